import type { Build, BuildRequest } from '../../src/builds/build.js';
import type { createBuildJob } from '../../src/vm/build-job-factory.js';

/** A queued Build as the manager would hand it to a runner; fields overridable per test. */
export function makeTestBuild(
  overrides: {
    id?: string;
    request?: Partial<BuildRequest>;
    source?: Partial<Build['source']>;
  } = {},
): Build {
  const id = overrides.id ?? 'b_aaaaaaaaaaaaaaaaaaaa';
  return {
    id,
    tenant: 'acme',
    status: 'queued',
    request: {
      dockerfile: null,
      dockerfilePath: 'Dockerfile',
      contextDir: '',
      buildArgs: { A: '1' },
      secretIds: ['npm'],
      cacheScope: 'main',
      timeoutSeconds: 600,
      memoryMb: 1024,
      cpus: 1,
      networkMode: 'isolated',
      imageName: null,
      ...overrides.request,
    },
    source: {
      path: '/nowhere',
      sizeBytes: 700,
      sha256: 'a'.repeat(64),
      compression: 'gzip',
      entries: 3,
      unpackedBytes: 2000,
      ...overrides.source,
    },
    repository: `acme/${id}`,
    cacheRepository: 'cache/acme/main',
    createdAt: new Date(0),
    startedAt: null,
    finishedAt: null,
    attempts: 0,
    result: null,
    failure: null,
    timings: { marks: [], afterFinish: null },
  };
}

/**
 * createBuildJob's options as a runner under test passes them: the guest's registry and egress
 * proxy addresses of the stand-in network, small limits, no mirror upstreams.
 */
export const TEST_JOB_OPTIONS = {
  guestRegistryAddress: '10.0.2.100:5000',
  guestEgressProxyAddress: '10.0.2.100:3128',
  limits: { maxUnpackedBytes: 5000, maxEntries: 10, maxPathBytes: 255 },
  mirrorUpstreams: [],
} as const satisfies Parameters<typeof createBuildJob>[1];
