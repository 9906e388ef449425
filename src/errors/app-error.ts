import { ERROR_CATALOG, type ErrorCode } from './error-catalog.js';

/**
 * The one error type the daemon throws on purpose. Its `code` comes from the catalog, which
 * fixes the HTTP status and the default message; `expose` says whether the message may reach
 * a client (4xx) or must be replaced by a generic one (5xx).
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly expose: boolean;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { details?: Record<string, unknown>; cause?: unknown } = {},
  ) {
    const entry = ERROR_CATALOG[code];
    super(message ?? entry.message, { cause: options.cause });
    this.name = 'AppError';
    this.code = code;
    this.status = entry.status;
    this.expose = entry.status < 500;
    this.details = options.details;
  }
}

/** True for an AppError of the given code (or of any code when none is given). */
export function isAppError(value: unknown, code?: ErrorCode): value is AppError {
  return value instanceof AppError && (code === undefined || value.code === code);
}
