/**
 * Scopes an API token may carry (docs/contracts.md#tokens-and-scopes). `registry:admin` is the
 * operator's: it may push the shared base-image namespace (`library/…`) that every tenant's builds
 * pull from.
 */
export const API_SCOPES = [
  'builds:write',
  'builds:read',
  'registry:pull',
  'registry:admin',
  'secrets:write',
] as const;

export type ApiScope = (typeof API_SCOPES)[number];

export function isApiScope(value: string): value is ApiScope {
  return (API_SCOPES as readonly string[]).includes(value);
}

/** Shared base-image namespace every build may pull from. */
export const BASE_IMAGE_NAMESPACE = 'library';
/** Namespace of build caches: `cache/<tenant>/<scope>`. */
export const CACHE_NAMESPACE = 'cache';
/** Namespace of the pull-through mirror: `mirror/<upstream>/<repository>`, written only by it. */
export const MIRROR_NAMESPACE = 'mirror';

/**
 * Tenant names that can never be used: they are registry namespaces
 * (docs/contracts.md#registry-namespaces).
 */
export const RESERVED_TENANTS: ReadonlySet<string> = new Set([
  CACHE_NAMESPACE,
  BASE_IMAGE_NAMESPACE,
  MIRROR_NAMESPACE,
  'v2',
  'token',
]);
