/**
 * Why a source archive is refused. The same codes on both sides: the host answers an upload
 * with them (each is an HTTP 4xx in the daemon's error catalog), the guest reports them as an
 * `invalid_source` build failure.
 */
export type ArchiveErrorCode =
  | 'SOURCE_NOT_ARCHIVE'
  | 'SOURCE_CORRUPT'
  | 'SOURCE_PATH_TOO_LONG'
  | 'SOURCE_UNSAFE_PATH'
  | 'SOURCE_FORBIDDEN_ENTRY'
  | 'SOURCE_BAD_LINK'
  | 'SOURCE_TOO_MANY_ENTRIES'
  | 'SOURCE_UNPACKED_TOO_LARGE';

/** A source archive broke the archive policy (common/archive/source-archive-policy.ts). */
export class ArchiveError extends Error {
  readonly code: ArchiveErrorCode;
  /** The limit that was exceeded, for the limit codes. */
  readonly limit: number | undefined;

  constructor(
    code: ArchiveErrorCode,
    message: string,
    options: { limit?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'ArchiveError';
    this.code = code;
    this.limit = options.limit;
  }
}

/** True for an ArchiveError. */
export function isArchiveError(value: unknown): value is ArchiveError {
  return value instanceof ArchiveError;
}

/** Keeps error messages readable whatever bytes an archive holds. */
export function printable(text: string): string {
  const clean = text.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > 200 ? `${clean.slice(0, 200)}…` : clean;
}
