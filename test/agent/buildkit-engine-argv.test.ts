import { describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import type { EngineRequest } from '../../agent/engines/build-engine.js';
import { BUILDKIT_USER, buildkitdArgv, buildkitdEnv } from '../../agent/engines/buildkit-daemon.js';
import {
  buildkitBuildArgv,
  buildkitEnv,
  buildkitFrontendArgs,
  buildkitPaths,
  parseBuildctlVersion,
} from '../../agent/engines/buildkit-engine.js';

const ADDR = 'unix:///run/user/1000/buildkit/buildkitd.sock';

describe('BuildKit argv', () => {
  it('builds with the dockerfile frontend, pushes every tag, exports cache with mode=max and writes metadata', () => {
    expect(buildkitBuildArgv('buildctl', ADDR, engineRequest(), '/m.json')).toEqual([
      'buildctl',
      '--addr',
      ADDR,
      'build',
      '--frontend',
      'dockerfile.v0',
      '--opt',
      'cmdline=dockerfile.v0',
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
      'type=image,"name=10.0.2.100:5000/acme/web:b_abc,10.0.2.100:5000/acme/web:latest",push=true,registry.insecure=true,compression=gzip,force-compression=true',
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
      'buildctl',
      ADDR,
      engineRequest({
        cacheRef: null,
        registryInsecure: false,
        imageRefs: ['registry.example:443/acme/web:b_abc'],
      }),
      '/m.json',
    );
    expect(argv).not.toContain('--export-cache');
    expect(argv).not.toContain('--import-cache');
    expect(argv).toContain(
      'type=image,name=registry.example:443/acme/web:b_abc,push=true,compression=gzip,force-compression=true',
    );
  });

  it('sets the image exporter compression for each value, forced, with OCI media types for zstd', () => {
    const output = (buildkit: EngineRequest['layerCompression']['buildkit']) => {
      const layerCompression = { buildah: { format: 'zstd', level: 3 }, buildkit } as const;
      const argv = buildkitBuildArgv(
        'buildctl',
        ADDR,
        engineRequest({ layerCompression, imageRefs: ['r:1'], registryInsecure: false }),
        '/m',
      );
      return argv[argv.indexOf('--output') + 1];
    };
    expect(output({ format: 'gzip', level: null })).toBe(
      'type=image,name=r:1,push=true,compression=gzip,force-compression=true',
    );
    expect(output({ format: 'gzip', level: 1 })).toBe(
      'type=image,name=r:1,push=true,compression=gzip,compression-level=1,force-compression=true',
    );
    expect(output({ format: 'zstd', level: null })).toBe(
      'type=image,name=r:1,push=true,compression=zstd,force-compression=true,oci-mediatypes=true',
    );
    expect(output({ format: 'zstd', level: 19 })).toBe(
      'type=image,name=r:1,push=true,compression=zstd,compression-level=19,force-compression=true,oci-mediatypes=true',
    );
    expect(output({ format: 'none', level: null })).toBe(
      'type=image,name=r:1,push=true,compression=uncompressed,force-compression=true',
    );
  });

  it('gives buildctl the credentials through DOCKER_CONFIG and nothing for buildkitd', () => {
    expect(buildkitEnv(engineRequest(), {})).toEqual({
      DOCKER_CONFIG: '/run/kiln/credentials/creds-1/docker',
      TMPDIR: '/scratch/build/engine/tmp',
    });
  });

  it('keeps the built-in frontend for a `# syntax=` line, or runs the operator frontend image', () => {
    expect(buildkitFrontendArgs(null)).toEqual([
      '--frontend',
      'dockerfile.v0',
      '--opt',
      'cmdline=dockerfile.v0',
    ]);
    expect(buildkitFrontendArgs('10.0.2.100:5000/library/dockerfile:1.9')).toEqual([
      '--frontend',
      'gateway.v0',
      '--opt',
      'source=10.0.2.100:5000/library/dockerfile:1.9',
      '--opt',
      'cmdline=10.0.2.100:5000/library/dockerfile:1.9',
    ]);
  });

  it('runs buildkitd under rootlesskit on the host network with the overlayfs snapshotter', () => {
    const paths = buildkitPaths(engineRequest(), '/run/user/1000');
    expect(
      buildkitdArgv({ rootlesskitPath: 'rootlesskit', buildkitdPath: 'buildkitd', paths }),
    ).toEqual([
      'rootlesskit',
      '--net=host',
      '--state-dir=/run/user/1000/rootlesskit-buildkit',
      'buildkitd',
      '--addr',
      'unix:///run/user/1000/buildkit/buildkitd.sock',
      '--root',
      '/scratch/build/engine/buildkit/rootless',
      '--config',
      '/run/user/1000/buildkit/buildkitd.toml',
      '--oci-worker-snapshotter=overlayfs',
      '--oci-worker-net=host',
    ]);
    expect(buildkitdEnv(BUILDKIT_USER, paths)).toEqual({
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/home/kiln-build',
      USER: 'kiln-build',
      LOGNAME: 'kiln-build',
      XDG_RUNTIME_DIR: '/run/user/1000',
      TMPDIR: '/scratch/build/engine/buildkit/tmp',
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
