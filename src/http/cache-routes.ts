import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { requireApiToken } from './require-api-token.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { CacheDisks, CacheDiskView } from '../caches/cache-disks.js';
import { AppError } from '../errors/app-error.js';

/** The JSON shape of one cache disk (docs/contracts.md#caches). */
function cacheView(disk: CacheDiskView): Record<string, unknown> {
  return {
    scope: disk.scope,
    size_bytes: disk.sizeBytes,
    used_bytes: disk.usedBytes,
    created_at: disk.createdAt.toISOString(),
    last_commit_at: disk.committedAt?.toISOString() ?? null,
    last_commit_build_id: disk.committedBuildId,
    last_build_id: disk.lastBuildId,
    last_build_at: disk.lastBuildAt?.toISOString() ?? null,
  };
}

/**
 * A tenant's persistent cache disks: list, delete, prune. The tenant always comes from the
 * token, so another tenant's scope is simply not found (404).
 */
export function cacheRoutes(deps: {
  apiTokens: ApiTokenService;
  caches: CacheDisks | null;
}): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const canRead = requireApiToken(deps.apiTokens, 'builds:read');
  const canWrite = requireApiToken(deps.apiTokens, 'builds:write');
  const caches = (): CacheDisks => {
    if (deps.caches === null) throw new AppError('CACHE_NOT_FOUND', 'Cache disks are turned off.');
    return deps.caches;
  };

  app.get('/caches', canRead, async (c) => {
    const disks = deps.caches === null ? [] : await deps.caches.list(c.var.principal.tenant);
    return c.json({ caches: disks.map(cacheView) });
  });

  app.delete('/caches/:scope', canWrite, async (c) => {
    const scope = c.req.param('scope');
    await caches().remove(c.var.principal.tenant, scope);
    c.var.logger.info({ scope }, 'cache disk deleted');
    return c.body(null, 204);
  });

  app.post('/caches/:scope/prune', canWrite, async (c) => {
    const scope = c.req.param('scope');
    const disk = await caches().prune(c.var.principal.tenant, scope);
    c.var.logger.info({ scope }, 'cache disk pruned');
    return c.json(cacheView(disk));
  });

  return app;
}
