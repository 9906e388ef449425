import { defineBuildCases } from './build-cases.js';

/**
 * End to end under Buildah (always in the guest image): the shared cases of build-cases.ts,
 * asked for with `engine=buildah`. BuildKit runs the same cases in buildkit.e2e.test.ts
 * (`npm run test:buildkit`).
 */
defineBuildCases('buildah');
