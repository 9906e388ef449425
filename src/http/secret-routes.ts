import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { readBody } from './request-body.js';
import { requireApiToken } from './require-api-token.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { SecretStore } from '../auth/secret-store.js';
import { AppError } from '../errors/app-error.js';

/**
 * A tenant's build secrets: PUT stores a value (encrypted at rest), GET lists ids only,
 * DELETE removes one. Values are never returned.
 */
export function secretRoutes(deps: {
  apiTokens: ApiTokenService;
  secrets: SecretStore;
  /** Largest body of PUT /secrets/:id; past it BODY_TOO_LARGE, while it streams. */
  maxBodyBytes: number;
}): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const canWrite = requireApiToken(deps.apiTokens, 'secrets:write');

  app.get('/secrets', canWrite, (c) =>
    c.json({
      secrets: deps.secrets
        .list(c.var.principal.tenant)
        .map((s) => ({ id: s.id, updated_at: s.updatedAt.toISOString() })),
    }),
  );

  app.put('/secrets/:id', canWrite, async (c) => {
    if (!/^application\/json\b/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'PUT /secrets/:id takes application/json.');
    }
    const text = (await readBody(c, deps.maxBodyBytes)).toString('utf8');
    let body: unknown;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      throw new AppError('INVALID_SECRET', 'The body must be JSON {"value": "..."}.');
    }
    const value = (body as { value?: unknown } | null)?.value;
    if (typeof value !== 'string') {
      throw new AppError('INVALID_SECRET', 'The body must be JSON {"value": "..."}.');
    }
    const id = c.req.param('id');
    const created = deps.secrets.put(c.var.principal.tenant, id, value);
    c.var.logger.info({ secretId: id, created }, 'secret stored');
    return c.json({ id }, created ? 201 : 200);
  });

  app.delete('/secrets/:id', canWrite, (c) => {
    if (!deps.secrets.delete(c.var.principal.tenant, c.req.param('id'))) {
      throw new AppError('SECRET_NOT_FOUND');
    }
    return c.body(null, 204);
  });

  return app;
}
