import type { Build } from './build.js';

/**
 * Issues a build's registry token (docs/contracts.md#build-tokens): push+pull on the build's
 * repository and its cache repository, pull on the base-image namespace; lifetime = the build's
 * timeout plus a margin. The token names the one attempt (run) it was issued for, and the
 * registry refuses it as soon as that attempt is no longer the running one (see BuildActivity).
 */
export interface BuildTokenIssuer {
  issueBuildToken(build: Build, attemptId: string): Promise<string>;
}

/**
 * Tells the registry whether a build token's attempt is the one running now, so a token stops
 * working when its run ends, and a restart or a re-run makes every earlier token useless.
 */
export interface BuildActivity {
  isAttemptRunning(buildId: string, attemptId: string): boolean;
}
