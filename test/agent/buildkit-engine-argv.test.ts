import { describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import {
  buildkitBuildArgv,
  buildkitEnv,
  parseBuildctlVersion,
} from '../../agent/engines/buildkit-engine.js';

describe('BuildKit argv', () => {
  it('builds with the dockerfile frontend, pushes every tag, exports cache with mode=max and writes metadata', () => {
    expect(buildkitBuildArgv('buildctl-daemonless.sh', engineRequest(), '/m.json')).toEqual([
      'buildctl-daemonless.sh',
      'build',
      '--frontend',
      'dockerfile.v0',
      '--local',
      'context=/scratch/build/src/app',
      '--local',
      'dockerfile=/scratch/build/src/app/docker',
      '--opt',
      'filename=Dockerfile.prod',
      '--opt',
      'build-arg:A_FIRST=x y',
      '--opt',
      'build-arg:NODE_ENV=production',
      '--secret',
      'id=npmrc,src=/run/kiln/credentials/creds-1/secrets/npmrc',
      '--output',
      'type=image,"name=10.0.2.100:5000/acme/web:b_abc,10.0.2.100:5000/acme/web:latest",push=true,registry.insecure=true',
      '--export-cache',
      'type=registry,ref=10.0.2.100:5000/cache/acme/main,mode=max,registry.insecure=true',
      '--import-cache',
      'type=registry,ref=10.0.2.100:5000/cache/acme/main,registry.insecure=true',
      '--metadata-file',
      '/m.json',
      '--progress',
      'rawjson',
    ]);
  });

  it('omits cache flags without a cache repository and the insecure flag over TLS', () => {
    const argv = buildkitBuildArgv(
      'buildctl-daemonless.sh',
      engineRequest({
        cacheRef: null,
        registryInsecure: false,
        imageRefs: ['registry.example:443/acme/web:b_abc'],
      }),
      '/m.json',
    );
    expect(argv).not.toContain('--export-cache');
    expect(argv).not.toContain('--import-cache');
    expect(argv).toContain('type=image,name=registry.example:443/acme/web:b_abc,push=true');
  });

  it('configures buildkitd through BUILDKITD_FLAGS and credentials through DOCKER_CONFIG', () => {
    expect(buildkitEnv(engineRequest(), {})).toEqual({
      BUILDKITD_FLAGS:
        '--config /run/kiln/credentials/creds-1/buildkitd.toml --root /scratch/build/engine/buildkit/root',
      DOCKER_CONFIG: '/run/kiln/credentials/creds-1/docker',
      TMPDIR: '/scratch/build/engine/tmp',
    });
  });

  it('parses the version from buildctl --version', () => {
    expect(
      parseBuildctlVersion(
        'buildctl github.com/moby/buildkit v0.12.5 bac3f2b673f3f9d33e79046008e7a38e856b3dc6\n',
      ),
    ).toBe('v0.12.5');
  });
});
