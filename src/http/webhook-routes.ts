import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { readBody } from './request-body.js';
import { requireApiToken } from './require-api-token.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { BuildManager } from '../builds/build-manager.js';
import { AppError } from '../errors/app-error.js';
import { parseWebhookUrl } from '../webhooks/parse-webhook-url.js';
import type { TenantWebhookSettings, WebhookStore } from '../webhooks/webhook-store.js';

/** Largest JSON body of PUT /webhook-settings (past it BODY_TOO_LARGE, while it streams). */
const MAX_BODY_BYTES = 8 * 1024;

/** How long a replaced signing secret keeps signing by default, and at most (seconds). */
export const DEFAULT_ROTATION_OVERLAP_SECONDS = 86_400;
export const MAX_ROTATION_OVERLAP_SECONDS = 7 * 86_400;

function settingsView(s: TenantWebhookSettings) {
  return {
    default_url: s.defaultUrl,
    signing_secret: s.signingSecret,
    previous_secret_expires_at: s.previousSecretExpiresAt?.toISOString() ?? null,
  };
}

/** `{"overlap_seconds": N}` of a rotation (an empty body takes the default). */
function overlapSeconds(text: string): number {
  if (text.trim() === '') return DEFAULT_ROTATION_OVERLAP_SECONDS;
  let body: unknown;
  try {
    body = JSON.parse(text) as unknown;
  } catch {
    throw new AppError('BAD_REQUEST', 'The body must be JSON {"overlap_seconds": N}.');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('BAD_REQUEST', 'The body must be JSON {"overlap_seconds": N}.');
  }
  const value = (body as { overlap_seconds?: unknown }).overlap_seconds;
  if (value === undefined) return DEFAULT_ROTATION_OVERLAP_SECONDS;
  if (
    typeof value !== 'number' ||
    !Number.isInteger(value) ||
    value < 0 ||
    value > MAX_ROTATION_OVERLAP_SECONDS
  ) {
    throw new AppError(
      'RESOURCE_OUT_OF_RANGE',
      `overlap_seconds must be a whole number between 0 and ${MAX_ROTATION_OVERLAP_SECONDS}.`,
      { details: { field: 'overlap_seconds', min: 0, max: MAX_ROTATION_OVERLAP_SECONDS } },
    );
  }
  return value;
}

/**
 * Webhooks: a build's deliveries and their attempts (`GET /builds/:id/webhooks`), and the
 * tenant's settings — the default URL and the signing secret receivers verify with
 * (`GET|PUT /webhook-settings`, scope `secrets:write`, since the answer holds a secret), and
 * the secret's rotation with an overlap in which deliveries carry both signatures
 * (`POST /webhook-settings/rotate-secret`).
 */
export function webhookRoutes(deps: {
  apiTokens: ApiTokenService;
  manager: BuildManager;
  webhooks: WebhookStore;
}): Hono<ApiEnv> {
  const app = new Hono<ApiEnv>();
  const canRead = requireApiToken(deps.apiTokens, 'builds:read');
  const canAdmin = requireApiToken(deps.apiTokens, 'secrets:write');

  app.get('/builds/:id/webhooks', canRead, (c) => {
    const { build } = deps.manager.get(c.var.principal.tenant, c.req.param('id'));
    return c.json({
      deliveries: deps.webhooks.forBuild(build.id).map((d) => ({
        id: d.id,
        event: d.event,
        url: d.url,
        state: d.state,
        created_at: d.createdAt.toISOString(),
        next_attempt_at: d.nextAttemptAt?.toISOString() ?? null,
        give_up_at: d.giveUpAt.toISOString(),
        attempts: d.attempts.map((a) => ({
          attempt: a.attempt,
          started_at: a.startedAt.toISOString(),
          latency_ms: a.latencyMs,
          status_code: a.statusCode,
          error: a.error,
        })),
      })),
    });
  });

  app.get('/webhook-settings', canAdmin, (c) =>
    c.json(settingsView(deps.webhooks.settings(c.var.principal.tenant))),
  );

  app.put('/webhook-settings', canAdmin, async (c) => {
    if (!/^application\/json\b/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError('UNSUPPORTED_MEDIA_TYPE', 'PUT /webhook-settings takes application/json.');
    }
    const text = (await readBody(c, MAX_BODY_BYTES)).toString('utf8');
    let body: unknown;
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      throw new AppError('BAD_REQUEST', 'The body must be JSON {"default_url": "…" | null}.');
    }
    const raw = (body as { default_url?: unknown } | null)?.default_url;
    if (raw !== null && typeof raw !== 'string') {
      throw new AppError('BAD_REQUEST', 'The body must be JSON {"default_url": "…" | null}.');
    }
    const url = raw === null ? null : parseWebhookUrl(raw);
    const settings = deps.webhooks.setDefaultUrl(c.var.principal.tenant, url);
    c.var.logger.info({ defaultUrl: url }, 'webhook settings stored');
    return c.json(settingsView(settings));
  });

  app.post('/webhook-settings/rotate-secret', canAdmin, async (c) => {
    const text = (await readBody(c, MAX_BODY_BYTES)).toString('utf8');
    if (text.trim() !== '' && !/^application\/json\b/i.test(c.req.header('content-type') ?? '')) {
      throw new AppError(
        'UNSUPPORTED_MEDIA_TYPE',
        'POST /webhook-settings/rotate-secret takes application/json (or no body).',
      );
    }
    const overlap = overlapSeconds(text);
    const settings = deps.webhooks.rotateSecret(c.var.principal.tenant, overlap);
    c.var.logger.info({ overlapSeconds: overlap }, 'webhook signing secret rotated');
    return c.json(settingsView(settings));
  });

  return app;
}
