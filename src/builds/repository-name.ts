import { CACHE_NAMESPACE } from '../auth/scopes.js';

/** One OCI repository path component (distribution-spec "Pulling manifests", name grammar). */
const COMPONENT = '[a-z0-9]+(?:[._-][a-z0-9]+)*';
const IMAGE_NAME = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const SCOPE = new RegExp(`^${COMPONENT}$`);

/** Longest image_name / cache_scope accepted (the full repository name stays under 255). */
const MAX_NAME_LENGTH = 128;

/** True for a repository name inside a tenant: OCI name components separated by "/". */
export function isValidImageName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && IMAGE_NAME.test(name);
}

/** True for a cache scope: exactly one OCI name component. */
export function isValidCacheScope(scope: string): boolean {
  return scope.length <= MAX_NAME_LENGTH && SCOPE.test(scope);
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

/** Build cache lives in `cache/<tenant>/<scope>` (docs/contracts.md#registry-namespaces). */
export function cacheRepository(tenant: string, scope: string | null): string | null {
  return scope === null ? null : `${CACHE_NAMESPACE}/${tenant}/${scope}`;
}

/** Tags pushed: the build id always, `latest` only when the client named the image. */
export function outputTags(buildId: string, imageName: string | null): string[] {
  return imageName === null ? [buildId] : [buildId, 'latest'];
}
