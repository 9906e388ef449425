import type { Logger } from 'pino';
import type { ApiPrincipal } from '../auth/api-principal.js';

/** Hono environment of the API routes: the per-request logger and the authenticated caller. */
export interface ApiEnv {
  Variables: {
    logger: Logger;
    principal: ApiPrincipal;
  };
}
