import { SECRET_ID_PATTERN } from '../auth/secret-store.js';
import { AppError } from '../errors/app-error.js';

/** A multipart text part named `secret.<id>` carries one per-build secret value. */
export const BUILD_SECRET_PREFIX = 'secret.';
/** At most this many per-build secrets in one upload. */
export const MAX_BUILD_SECRETS = 32;
/** Largest per-build secret value (bytes of UTF-8), the same bound as a stored secret. */
export const MAX_BUILD_SECRET_BYTES = 64 * 1024;

/** The secret id of a `secret.<id>` part name, or null for any other part. */
export function buildSecretId(partName: string): string | null {
  return partName.startsWith(BUILD_SECRET_PREFIX)
    ? partName.slice(BUILD_SECRET_PREFIX.length)
    : null;
}

function refused(id: string, message: string): AppError {
  return new AppError('INVALID_BUILD_SECRET', `secret.${id}: ${message}`, {
    details: { secret: id },
  });
}

/**
 * Checks one per-build secret part against what was received before it: a valid id, sent
 * before the source (the values are held in memory from the start, never spooled to disk),
 * not repeated, bounded in size and count. Throws INVALID_BUILD_SECRET naming the secret.
 */
export function checkBuildSecretPart(options: {
  id: string;
  value: string;
  received: ReadonlyMap<string, string>;
  afterSource: boolean;
}): void {
  const { id, value, received, afterSource } = options;
  if (!SECRET_ID_PATTERN.test(id)) throw refused(id, 'is not a valid secret id');
  if (afterSource) throw refused(id, 'must be sent before the source part');
  if (received.has(id)) throw refused(id, 'was sent twice');
  if (received.size >= MAX_BUILD_SECRETS) {
    throw refused(id, `at most ${MAX_BUILD_SECRETS} per-build secrets may be sent`);
  }
  if (Buffer.byteLength(value, 'utf8') > MAX_BUILD_SECRET_BYTES) {
    throw refused(id, `values are limited to ${MAX_BUILD_SECRET_BYTES} bytes`);
  }
}
