import { defineConfig } from 'vitest/config';
import { ClosingLineReporter } from './test/helpers/closing-line-reporter.js';

/**
 * Test files that run real clients and upstream servers: skopeo and buildah against Kiln's
 * registry and through its mirror against Distribution, npm against a Verdaccio registry, the
 * node image stand-in build. Their own
 * project: they need those tools installed and take minutes.
 */
const CLIENT_TESTS = [
  'test/registry/registry-clients.test.ts',
  'test/registry/mirror-pull-through.test.ts',
  'test/registry/mirror-eviction.test.ts',
  'test/registry/mirror-corrupt-upstream.test.ts',
  'test/registry/mirror-prefetch.test.ts',
  'test/agent/buildah-engine-registry.test.ts',
  'test/helpers/test-fixtures.test.ts',
  'test/admin/backup-data-dir.test.ts',
];

/** Test files that boot real microVMs (QEMU under TCG here) outside the end-to-end suite. */
const VM_TESTS = [
  'test/vm/qemu/qemu-vmm.test.ts',
  'test/vm/qemu/qemu-accel-probe.test.ts',
  'test/vm/select-vmm.test.ts',
  'test/images/guest-image-boot.test.ts',
];

/** Builds (or finds) this checkout's guest image and points KILN_IMAGE_DIR at it. */
const GUEST_IMAGE_SETUP = './test/helpers/guest-image-setup.ts';

/** The whole daemon as a process, building real images in real VMs. */
const E2E_TESTS = ['test/e2e/**/*.test.ts'];

/**
 * The same end-to-end cases under rootless BuildKit, whose binaries are operator-supplied:
 * only `npm run test:buildkit` (scripts/test-buildkit.sh, which sets KILN_TEST_BUILDKIT=1 and
 * KILN_BUILDKIT_DIR) defines this project, so `npm test` never needs them.
 */
const BUILDKIT_TESTS = ['test/e2e/buildkit.e2e.test.ts'];
const withBuildkit = process.env.KILN_TEST_BUILDKIT === '1';

export default defineConfig({
  test: {
    // One reporter set for every project, so each script ends with the closing line.
    reporters: ['default', new ClosingLineReporter()],
    // The VM suites boot real QEMU microVMs under TCG: generous per-test limits, and files
    // run in parallel only up to the two cores these machines have.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['test/**/*.test.ts'],
          exclude: [...CLIENT_TESTS, ...VM_TESTS, ...E2E_TESTS],
        },
      },
      { extends: true, test: { name: 'clients', include: CLIENT_TESTS } },
      { extends: true, test: { name: 'vm', include: VM_TESTS, globalSetup: [GUEST_IMAGE_SETUP] } },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: E2E_TESTS,
          exclude: BUILDKIT_TESTS,
          globalSetup: [GUEST_IMAGE_SETUP],
        },
      },
      ...(withBuildkit
        ? [
            {
              extends: true as const,
              test: { name: 'buildkit', include: BUILDKIT_TESTS, globalSetup: [GUEST_IMAGE_SETUP] },
            },
          ]
        : []),
    ],
  },
});
