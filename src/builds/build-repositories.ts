import { CACHE_NAMESPACE } from '../auth/scopes.js';
import { isValidNameComponent, isValidRepositoryName } from '../registry/repository-name.js';

/**
 * Longest `image_name` / `cache_scope` a client may give. With the longest tenant (63) the
 * output `<tenant>/<image_name>` and the cache `cache/<tenant>/<scope>` stay well under the
 * registry's 255-character name limit.
 */
const MAX_NAME_LENGTH = 128;

/** True for an image name inside a tenant: one or more OCI name components joined by `/`. */
export function isValidImageName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && isValidRepositoryName(name);
}

/** True for a cache scope: exactly one OCI name component. */
export function isValidCacheScope(scope: string): boolean {
  return scope.length <= MAX_NAME_LENGTH && isValidNameComponent(scope);
}

/**
 * Images land in `<tenant>/<image_name, or the build id>` (docs/contracts.md#registry-namespaces).
 */
export function outputRepository(
  tenant: string,
  buildId: string,
  imageName: string | null,
): string {
  return `${tenant}/${imageName ?? buildId}`;
}

/** The build cache lives in `cache/<tenant>/<scope>` (docs/contracts.md#registry-namespaces). */
export function cacheRepository(tenant: string, scope: string | null): string | null {
  return scope === null ? null : `${CACHE_NAMESPACE}/${tenant}/${scope}`;
}

/** Tags pushed: the build id always, `latest` only when the client named the image. */
export function outputTags(buildId: string, imageName: string | null): string[] {
  return imageName === null ? [buildId] : [buildId, 'latest'];
}
