import { AppError } from '../../src/errors/app-error.js';

export type EngineFailureCode = 'build_failed' | 'push_failed';

/** An engine failure that the result reports as `build_failed` or `push_failed`. */
export function engineFailure(code: EngineFailureCode, message: string, cause?: unknown): AppError {
  return new AppError('ENGINE_FAILED', message, { details: { buildErrorCode: code }, cause });
}

/** The build error code an ENGINE_FAILED error carries, if any. */
export function engineFailureCode(err: AppError): EngineFailureCode | null {
  const code = err.details?.buildErrorCode;
  return code === 'build_failed' || code === 'push_failed' ? code : null;
}
