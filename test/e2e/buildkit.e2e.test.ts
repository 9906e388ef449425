import { beforeAll } from 'vitest';
import { defineBuildCases, guestImageEngines } from './build-cases.js';

/**
 * End to end under rootless BuildKit: the shared cases of build-cases.ts, asked for with
 * `engine=buildkit`. Runs only through `npm run test:buildkit` (scripts/test-buildkit.sh),
 * which builds the guest image with BuildKit's binaries from KILN_BUILDKIT_DIR; an image
 * without BuildKit fails here at once, never skips.
 */
beforeAll(async () => {
  const engines = await guestImageEngines();
  if (!engines.includes('buildkit')) {
    throw new Error(
      `the guest image under test (${process.env.KILN_IMAGE_DIR ?? '?'}) has no BuildKit (engines: ${engines.join(', ') || 'none'}); build it with KILN_BUILDKIT_DIR set (npm run test:buildkit)`,
    );
  }
});

defineBuildCases('buildkit');
