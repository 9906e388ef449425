import { defineConfig } from 'vitest/config';
import { ClosingLineReporter } from './test/helpers/closing-line-reporter.js';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    reporters: ['default', new ClosingLineReporter()],
    // End-to-end tests boot real QEMU microVMs under TCG: generous per-test limits, and
    // files run in parallel only up to the two cores these machines have.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    maxWorkers: 2,
    pool: 'forks',
  },
});
