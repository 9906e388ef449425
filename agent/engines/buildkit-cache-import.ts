/**
 * BuildKit's cache-import vertex (`importing cache manifest from <ref>`, solver/llbsolver/
 * bridge.go). When the scope has no cache yet its error is
 * `failed to configure registry cache importer: <ref>: not found`; BuildKit goes on without the
 * cache, so that error is no failure of the build.
 */
const IMPORT_VERTEX = /^importing cache manifest from (\S+)$/;

/** The cache reference a vertex imports from, or null when it is no cache-import vertex. */
export function cacheImportRef(vertexName: string): string | null {
  return IMPORT_VERTEX.exec(vertexName)?.[1] ?? null;
}

/** True when a cache-import error only says the cache does not exist yet. */
export function isMissingCache(error: string): boolean {
  return /: not found$/.test(error.trim());
}

/** The information line shown instead of BuildKit's `ERROR` for a scope's first build. */
export function missingCacheNote(ref: string): string {
  return `cache: no cache yet for ${ref} (first build of this scope)`;
}
