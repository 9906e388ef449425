import type { Build } from './build.js';

/**
 * Issues a build's registry token (docs/contracts.md#build-tokens): push+pull on the build's
 * repository and its cache repository, pull on the base-image namespace; lifetime = the build's
 * timeout plus a margin. The registry refuses it as soon as the build is terminal (see
 * BuildActivity).
 */
export interface BuildTokenIssuer {
  issueBuildToken(build: Build): Promise<string>;
}

/** Tells the registry whether a build is still running, so its token stops working at its end. */
export interface BuildActivity {
  isBuildActive(buildId: string): boolean;
}
