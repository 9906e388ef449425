import { describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import type { EngineRequest } from '../../agent/engines/build-engine.js';
import {
  buildahBuildArgv,
  buildahEnv,
  buildahPaths,
  buildahPruneArgv,
  buildahPushArgv,
  parseBuildahVersion,
} from '../../agent/engines/buildah-engine.js';

describe('Buildah argv', () => {
  const request = engineRequest();
  const paths = buildahPaths(request);
  /** What every subcommand starts with: the request's storage root, run root and overlay. */
  const OVERLAY_GLOBALS = [
    'buildah',
    '--root',
    '/scratch/build/engine/buildah/storage',
    '--runroot',
    '/run/kiln/engine/buildah-run',
    '--storage-driver',
    'overlay',
  ];

  it('builds with OCI isolation on the host network, layers, the auth file, every tag, build args, secrets and registry cache', () => {
    expect(buildahBuildArgv('buildah', request, paths, 'overlay')).toEqual([
      ...OVERLAY_GLOBALS,
      'build',
      '--isolation',
      'oci',
      '--network',
      'host',
      '--layers',
      '--retry',
      '0',
      '--authfile',
      '/run/kiln/credentials/creds-1/auth.json',
      '--file',
      '/scratch/build/src/app/docker/Dockerfile.prod',
      '--iidfile',
      '/scratch/build/engine/buildah/image-id',
      '--tag',
      '10.0.2.100:5000/acme/web:b_abc',
      '--tag',
      '10.0.2.100:5000/acme/web:latest',
      '--build-arg',
      'A_FIRST=x y',
      '--build-arg',
      'NODE_ENV=production',
      '--secret',
      'id=npmrc,src=/run/kiln/credentials/creds-1/secrets/npmrc',
      '--cache-from',
      '10.0.2.100:5000/cache/acme/main',
      '--cache-to',
      '10.0.2.100:5000/cache/acme/main',
      '/scratch/build/src/app',
    ]);
  });

  it('leaves out the cache flags without a cache repository and never passes secrets as build args', () => {
    const argv = buildahBuildArgv('buildah', engineRequest({ cacheRef: null }), paths, 'vfs');
    expect(argv).not.toContain('--cache-from');
    expect(argv).not.toContain('--cache-to');
    expect(argv.filter((a) => a.includes('npmrc'))).toEqual([
      'id=npmrc,src=/run/kiln/credentials/creds-1/secrets/npmrc',
    ]);
    expect(argv.slice(1, 7)).toContain('vfs');
  });

  it('pushes one reference with the auth file and a digest file', () => {
    expect(
      buildahPushArgv(
        'buildah',
        request,
        paths,
        'overlay',
        'abc123',
        request.imageRefs[1]!,
        '/d/1',
      ),
    ).toEqual([
      ...OVERLAY_GLOBALS,
      'push',
      '--authfile',
      '/run/kiln/credentials/creds-1/auth.json',
      '--digestfile',
      '/d/1',
      '--compression-format',
      'gzip',
      'abc123',
      'docker://10.0.2.100:5000/acme/web:latest',
    ]);
  });

  it('asks buildah push for the compression the host chose for Buildah: the format, its level when set', () => {
    const push = (buildah: EngineRequest['layerCompression']['buildah']) => {
      const layerCompression = { buildah, buildkit: { format: 'none', level: null } } as const;
      const argv = buildahPushArgv(
        'buildah',
        engineRequest({ layerCompression }),
        paths,
        'overlay',
        'abc123',
        'r',
        '/d/0',
      );
      return argv.slice(argv.indexOf('/d/0') + 1, argv.indexOf('abc123'));
    };
    expect(push({ format: 'gzip', level: null })).toEqual(['--compression-format', 'gzip']);
    expect(push({ format: 'gzip', level: 1 })).toEqual([
      '--compression-format',
      'gzip',
      '--compression-level',
      '1',
    ]);
    expect(push({ format: 'zstd', level: null })).toEqual(['--compression-format', 'zstd']);
    expect(push({ format: 'zstd', level: 3 })).toEqual([
      '--compression-format',
      'zstd',
      '--compression-level',
      '3',
    ]);
  });

  it('points Buildah at the memory-backed registries.conf and auth file', () => {
    const env = buildahEnv(request, { PATH: '/usr/bin' });
    expect(env).toMatchObject({
      PATH: '/usr/bin',
      CONTAINERS_REGISTRIES_CONF: '/run/kiln/credentials/creds-1/registries.conf',
      REGISTRY_AUTH_FILE: '/run/kiln/credentials/creds-1/auth.json',
      BUILDAH_ISOLATION: 'oci',
      TMPDIR: '/scratch/build/engine/tmp',
    });
  });

  it('prunes every image and layer from the same storage root before a build on a full cache disk', () => {
    expect(buildahPruneArgv('buildah', paths, 'overlay')).toEqual([
      ...OVERLAY_GLOBALS,
      'rmi',
      '--all',
      '--force',
    ]);
  });

  it('parses the version from buildah --version', () => {
    expect(
      parseBuildahVersion(
        'buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)\n',
      ),
    ).toBe('1.28.2');
  });
});
