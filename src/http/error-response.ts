import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import { isClientAbort } from './client-abort.js';
import { AppError } from '../errors/app-error.js';

/**
 * Maps any thrown value to the API's error shape `{"error":{"code","message","details?"}}`.
 * 4xx AppErrors are shown as they are; a client that went away mid-request is logged at info
 * and answered UPLOAD_ABORTED; everything else is logged with its stack and answered with a
 * generic 500 whose message never reaches the client.
 */
export function errorResponse(err: unknown, c: Context, logger: Logger): Response {
  if (!(err instanceof AppError && err.expose) && isClientAbort(err, c)) {
    // Nobody is left to read the answer; it is a 400 for the access log, not a fault of ours.
    logger.info({ reason: String(err) }, 'client disconnected before its request was complete');
    err = new AppError('UPLOAD_ABORTED', undefined, { cause: err });
  }
  if (err instanceof AppError && err.expose) {
    if (err.status === 401) c.header('WWW-Authenticate', 'Bearer realm="kiln"');
    return c.json(
      {
        error: {
          code: err.code,
          message: err.message,
          ...(err.details ? { details: err.details } : {}),
        },
      },
      err.status as ContentfulStatusCode,
    );
  }
  const app = err instanceof AppError ? err : new AppError('INTERNAL', undefined, { cause: err });
  logger.error({ err }, 'request failed');
  return c.json(
    { error: { code: app.code, message: new AppError(app.code).message } },
    app.status as ContentfulStatusCode,
  );
}
