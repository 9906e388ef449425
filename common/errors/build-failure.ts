import type { BuildErrorCode } from './build-error-code.js';

/**
 * A build that cannot succeed, with the build error code it ends with (`build_failed`,
 * `push_failed`, `invalid_source`, …). The guest agent throws it and reports its code in the
 * `result` message; it is never an HTTP answer.
 */
export class BuildFailure extends Error {
  readonly code: BuildErrorCode;

  constructor(code: BuildErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause });
    this.name = 'BuildFailure';
    this.code = code;
  }
}

/** True for a BuildFailure. */
export function isBuildFailure(value: unknown): value is BuildFailure {
  return value instanceof BuildFailure;
}
