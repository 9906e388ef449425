import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { isAppError } from '../errors/app-error.js';

/** Stream error codes Node gives a body whose client went away. */
const ABORT_CODES = new Set(['ECONNRESET', 'ERR_STREAM_PREMATURE_CLOSE', 'ECONNABORTED', 'EPIPE']);

/**
 * True when `err` is the client leaving mid-request (it closed the connection before its body
 * was complete), not a fault of ours: UPLOAD_ABORTED, a reset or premature-close stream error,
 * or any failure while the request's socket is already gone with the body unfinished. Such a
 * request is logged at info and never counted as a 500.
 */
export function isClientAbort(err: unknown, c: Context): boolean {
  if (isAppError(err, 'UPLOAD_ABORTED')) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && ABORT_CODES.has(code)) return true;
  const env: unknown = c.env;
  const incoming =
    typeof env === 'object' && env !== null && 'incoming' in env
      ? (env as { incoming: IncomingMessage }).incoming
      : undefined;
  return incoming !== undefined && !incoming.complete && incoming.socket.destroyed;
}
