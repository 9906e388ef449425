import { createMiddleware } from 'hono/factory';
import type { ApiEnv } from './api-env.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { ApiScope } from '../auth/scopes.js';
import { AppError } from '../errors/app-error.js';

/**
 * Authenticates the caller with `Authorization: Bearer <API token>`
 * (docs/contracts.md#tokens-and-scopes): 401 without a token or with one that does not verify
 * (registry tokens included), 403 without `scope`.
 */
export function requireApiToken(apiTokens: ApiTokenService, scope: ApiScope) {
  return createMiddleware<ApiEnv>(async (c, next) => {
    const header = c.req.header('authorization');
    const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m?.[1]) throw new AppError('UNAUTHENTICATED');
    const principal = await apiTokens.verify(m[1]);
    if (!principal.scopes.has(scope)) {
      throw new AppError('INSUFFICIENT_SCOPE', `This needs the ${scope} scope.`, {
        details: { scope },
      });
    }
    c.set('principal', principal);
    c.set('logger', c.var.logger.child({ tenant: principal.tenant, tokenId: principal.tokenId }));
    await next();
  });
}
