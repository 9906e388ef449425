import { BASE_IMAGE_GLOB, MIRROR_GLOB, type AccessEntry } from './access-scope.js';
import { BUILD_SUBJECT_PREFIX, type RegistryTokenService } from './registry-token-service.js';
import { buildRepositories } from '../builds/build-repositories.js';
import type { BuildTokenIssuer } from '../builds/build-token-issuer.js';
import type { Build } from '../builds/build.js';

/** Seconds a build token outlives the build's timeout, so the final push is never cut off. */
export const BUILD_TOKEN_MARGIN_SECONDS = 120;

/**
 * Issues a build's registry token (docs/contracts.md#build-tokens): push+pull on each of its
 * output repositories (its own and those other `image_tags` name) and its cache repository, pull on the base-image namespace and the pull-through
 * mirror, for the build's timeout plus a margin, bound to one attempt (claim `attempt`). The
 * registry refuses it as soon as that attempt is no longer the running one.
 */
export class BuildTokenService implements BuildTokenIssuer {
  private readonly tokens: RegistryTokenService;

  constructor(tokens: RegistryTokenService) {
    this.tokens = tokens;
  }

  issueBuildToken(build: Build, attemptId: string): Promise<string> {
    const access: AccessEntry[] = buildRepositories(build).map((name) => ({
      type: 'repository',
      name,
      actions: ['pull', 'push'],
    }));
    if (build.cacheRepository !== null) {
      access.push({ type: 'repository', name: build.cacheRepository, actions: ['pull', 'push'] });
    }
    access.push({ type: 'repository', name: BASE_IMAGE_GLOB, actions: ['pull'] });
    access.push({ type: 'repository', name: MIRROR_GLOB, actions: ['pull'] });
    const lifetime = build.request.timeoutSeconds + BUILD_TOKEN_MARGIN_SECONDS;
    const { token } = this.tokens.signNow(
      `${BUILD_SUBJECT_PREFIX}${build.id}`,
      access,
      lifetime,
      attemptId,
    );
    return Promise.resolve(token);
  }
}
