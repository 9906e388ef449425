import path from 'node:path';
import { z } from 'zod';
import { envBytes, envInt, envString, envOptionalString } from './env-schema.js';

const KiB = 1024;

/**
 * Where the daemon listens, keeps its data, and how it names itself to clients: the KILN_*
 * variables of this section and the `Config['server']` they become.
 */
export const serverConfigSchema = z
  .object({
    KILN_HOST: envString('127.0.0.1'),
    KILN_PORT: envInt(8083, 0, 65535),
    KILN_DATA_DIR: envString('./.kiln'),
    /** Base URL clients (and the registry's token realm) use; defaults to http://host:port. */
    KILN_PUBLIC_URL: envOptionalString(),
    KILN_LOG_LEVEL: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .optional()
      .transform((v) => v ?? 'info'),
    /** Seconds a graceful shutdown waits for running builds' VMs to be killed. */
    KILN_SHUTDOWN_GRACE_SECONDS: envInt(10, 0, 600),
    /** Largest JSON body of the API (PUT /secrets/:id), read whole. */
    /**
     * Seconds a request body may go without a byte before the connection is closed. An idle
     * limit, not a total one: a slow but steady upload of any size completes.
     */
    KILN_BODY_IDLE_TIMEOUT_SECONDS: envInt(60, 1, 3600),
    /** Seconds a client has to send its request headers (slowloris protection). */
    KILN_HEADERS_TIMEOUT_SECONDS: envInt(30, 1, 600),
    KILN_MAX_JSON_BODY_BYTES: envBytes(128 * KiB, 1024, 64 * 1024 * KiB),
  })
  .transform((env, ctx) => ({
    host: env.KILN_HOST,
    port: env.KILN_PORT,
    dataDir: path.resolve(env.KILN_DATA_DIR),
    publicUrl: publicUrl(env, ctx),
    logLevel: env.KILN_LOG_LEVEL,
    shutdownGraceSeconds: env.KILN_SHUTDOWN_GRACE_SECONDS,
    maxJsonBodyBytes: env.KILN_MAX_JSON_BODY_BYTES,
    bodyIdleTimeoutSeconds: env.KILN_BODY_IDLE_TIMEOUT_SECONDS,
    headersTimeoutSeconds: env.KILN_HEADERS_TIMEOUT_SECONDS,
  }));

/** KILN_PUBLIC_URL's origin, or `http://<host>:<port>` (IPv6 hosts in brackets, RFC 3986). */
function publicUrl(
  env: { KILN_HOST: string; KILN_PORT: number; KILN_PUBLIC_URL?: string },
  ctx: z.RefinementCtx,
): string {
  const host = env.KILN_HOST.includes(':') ? `[${env.KILN_HOST}]` : env.KILN_HOST;
  const fallback = `http://${host}:${env.KILN_PORT}`;
  if (env.KILN_PUBLIC_URL === undefined) return fallback;
  let url: URL;
  try {
    url = new URL(env.KILN_PUBLIC_URL);
  } catch {
    ctx.addIssue({ code: 'custom', path: ['KILN_PUBLIC_URL'], message: 'must be an absolute URL' });
    return fallback;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    ctx.addIssue({ code: 'custom', path: ['KILN_PUBLIC_URL'], message: 'must be http(s)' });
  }
  return url.origin;
}
