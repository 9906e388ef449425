import type { EngineRequest } from '../../agent/engines/build-engine.js';

/** An engine request as run-build.ts would make it, for argv tests. */
export function engineRequest(overrides: Partial<EngineRequest> = {}): EngineRequest {
  return {
    contextDir: '/scratch/build/src/app',
    dockerfile: '/scratch/build/src/app/docker/Dockerfile.prod',
    buildArgs: { NODE_ENV: 'production', A_FIRST: 'x y' },
    imageRefs: ['10.0.2.100:5000/acme/web:b_abc', '10.0.2.100:5000/acme/web:latest'],
    cacheRef: '10.0.2.100:5000/cache/acme/main',
    registryHost: '10.0.2.100:5000',
    registryInsecure: true,
    credentials: {
      authFile: '/run/kiln/credentials/creds-1/auth.json',
      dockerConfigDir: '/run/kiln/credentials/creds-1/docker',
      registriesConf: '/run/kiln/credentials/creds-1/registries.conf',
      buildkitdToml: '/run/kiln/credentials/creds-1/buildkitd.toml',
      secretFiles: { npmrc: '/run/kiln/credentials/creds-1/secrets/npmrc' },
    },
    workDir: '/scratch/build/engine',
    runDir: '/run/kiln/engine',
    layerCompression: {
      buildah: { format: 'gzip', level: null },
      buildkit: { format: 'gzip', level: null },
    },
    ...overrides,
  };
}
