import type { Build, BuildRequest } from '../../src/builds/build.js';
import type { createBuildJob } from '../../src/vm/build-job-factory.js';
import { testBuild } from '../helpers/test-build.js';

/** A queued Build as the manager would hand it to a runner; fields overridable per test. */
export function makeTestBuild(
  overrides: {
    id?: string;
    request?: Partial<BuildRequest>;
    source?: Partial<Build['source']>;
  } = {},
): Build {
  return testBuild({
    id: overrides.id,
    cacheRepository: 'cache/acme/main',
    request: {
      contextDir: '',
      buildArgs: { A: '1' },
      secretIds: ['npm'],
      cacheScope: 'main',
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
  });
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
