import { randomUUID } from 'node:crypto';
import { Hono } from 'hono';
import type { Logger } from 'pino';
import type { ApiEnv } from './api-env.js';
import { buildEventRoutes } from './build-event-routes.js';
import { buildRoutes } from './build-routes.js';
import { cacheRoutes } from './cache-routes.js';
import { errorResponse } from './error-response.js';
import { OPENAPI_DOCUMENT } from './openapi-document.js';
import { secretRoutes } from './secret-routes.js';
import { webhookRoutes } from './webhook-routes.js';
import type { Clock } from '../../common/time/clock.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { SecretStore } from '../auth/secret-store.js';
import type { BuildManager } from '../builds/build-manager.js';
import type { EventLog } from '../builds/event-log.js';
import type { CacheDisks } from '../caches/cache-disks.js';
import type { Config } from '../config/config.js';
import { AppError } from '../errors/app-error.js';
import type { RegistryEnv } from '../registry/registry-app.js';
import type { KilnMetrics } from '../telemetry/kiln-metrics.js';
import type { WebhookStore } from '../webhooks/webhook-store.js';

/** Everything the HTTP app needs; built by the composition root (or a test). */
export interface AppDeps {
  config: Config;
  logger: Logger;
  clock: Clock;
  manager: BuildManager;
  events: EventLog;
  apiTokens: ApiTokenService;
  secrets: SecretStore;
  metrics: KilnMetrics;
  /** Webhook settings and deliveries (GET /builds/:id/webhooks, /webhook-settings). */
  webhooks: WebhookStore;
  /** The OCI registry's app, mounted at /v2. */
  registry: Hono<RegistryEnv>;
  /** Persistent cache disks; null (or absent) when they are turned off. */
  caches?: CacheDisks | null;
  /** Extra readiness condition (store open, registry ready); ANDed with the manager's. */
  isReady?: () => boolean;
  /** Milliseconds between SSE heartbeats; default 15 000. */
  heartbeatMs?: number;
}

/** Builds the one Hono app (API, SSE, ops endpoints, /v2 registry) without listening. */
export function createApp(deps: AppDeps): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();

  app.use('*', async (c, next) => {
    const started = performance.now();
    const logger = deps.logger.child({
      reqId: c.req.header('x-request-id') ?? randomUUID(),
      method: c.req.method,
      path: c.req.path,
    });
    c.set('logger', logger);
    await next();
    // A 503 is a deliberate answer (starting, shutting down), not a fault.
    const status = c.res.status;
    const level = status >= 500 && status !== 503 ? 'error' : status === 503 ? 'info' : 'debug';
    logger[level]({ status, ms: Math.round(performance.now() - started) }, 'request done');
  });

  app.onError((err, c) => errorResponse(err, c, c.get('logger')));
  app.notFound(() => {
    throw new AppError('NOT_FOUND');
  });

  app.get('/healthz', (c) => c.json({ status: 'ok' }));
  // Not being ready is an answer, not a failure: 503 with what is true, and no error logged.
  app.get('/readyz', (c) => {
    const closing = !(deps.isReady?.() ?? true);
    if (!closing && deps.manager.ready) return c.json({ status: 'ready' });
    const code = closing ? 'SHUTTING_DOWN' : 'NOT_READY';
    return c.json({ error: { code, message: new AppError(code).message } }, 503);
  });
  app.get('/metrics', async (c) => {
    c.header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8');
    return c.body(await deps.metrics.render());
  });
  app.get('/openapi.json', (c) => c.json(OPENAPI_DOCUMENT));

  app.route(
    '/',
    buildRoutes({ config: deps.config, manager: deps.manager, apiTokens: deps.apiTokens }),
  );
  app.route(
    '/',
    buildEventRoutes({
      manager: deps.manager,
      events: deps.events,
      apiTokens: deps.apiTokens,
      clock: deps.clock,
      heartbeatMs: deps.heartbeatMs ?? 15_000,
    }),
  );
  app.route('/', cacheRoutes({ apiTokens: deps.apiTokens, caches: deps.caches ?? null }));
  app.route(
    '/',
    secretRoutes({
      apiTokens: deps.apiTokens,
      secrets: deps.secrets,
      maxBodyBytes: deps.config.server.maxJsonBodyBytes,
    }),
  );
  app.route(
    '/',
    webhookRoutes({ apiTokens: deps.apiTokens, manager: deps.manager, webhooks: deps.webhooks }),
  );
  app.route('/v2', deps.registry);
  return app;
}
