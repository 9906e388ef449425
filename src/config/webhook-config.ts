import { z } from 'zod';
import { envInt } from './env-schema.js';
import { parseConnectTarget } from '../egress/proxy-target.js';

/** Lists are separated by commas and/or whitespace. */
function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter((item) => item !== '');
}

/**
 * Webhook delivery (the KILN_WEBHOOK_* variables): the destinations an operator lets through
 * although their address is loopback or private, the per-attempt timeout and how long a
 * delivery is retried before it is given up.
 */
export const webhookConfigSchema = z
  .object({
    /** Exact `host:port` webhook destinations reached whatever their address. Default none. */
    KILN_WEBHOOK_EXCEPTIONS: z
      .string()
      .optional()
      .transform((text, ctx) => {
        const out: { host: string; port: number }[] = [];
        for (const item of splitList(text ?? '')) {
          const target = parseConnectTarget(item).target;
          if (target === undefined) {
            ctx.issues.push({ code: 'custom', message: `not host:port: ${item}`, input: text });
            return z.NEVER;
          }
          out.push({ host: target.host.host, port: target.port });
        }
        return out;
      }),
    /** Seconds one attempt may take, connect to the end of the response headers. */
    KILN_WEBHOOK_TIMEOUT_SECONDS: envInt(10, 1, 120),
    /** Seconds after the event within which failed attempts are retried (default one day). */
    KILN_WEBHOOK_RETRY_SECONDS: envInt(86_400, 1, 7 * 86_400),
  })
  .transform((env) => ({
    exceptions: env.KILN_WEBHOOK_EXCEPTIONS,
    timeoutSeconds: env.KILN_WEBHOOK_TIMEOUT_SECONDS,
    retrySeconds: env.KILN_WEBHOOK_RETRY_SECONDS,
  }));

/** What {@link webhookConfigSchema} yields: `Config['webhooks']`. */
export type WebhookConfig = z.output<typeof webhookConfigSchema>;
