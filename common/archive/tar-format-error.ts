/** Why a tar stream could not be decoded; each side maps it to its own error code. */
export type TarFormatReason =
  /** The stream ends inside a 512-byte header block. */
  | 'truncated-header'
  /** The header checksum is malformed or does not match (often: not a tar archive at all). */
  | 'checksum'
  /** A numeric header field is neither octal nor positive GNU base-256. */
  | 'number'
  /** A pax extended header record is malformed. */
  | 'pax-record'
  /** A pax `size` record is not a decimal number. */
  | 'pax-size'
  /** A pax global header ('g') sets path, linkpath or size, which are never honoured. */
  | 'pax-global-override'
  /** An extended header ('x', 'L', 'K') is not followed by the entry it describes. */
  | 'dangling-extension'
  /** A hardlink entry claims data, which readers disagree on how to skip. */
  | 'hardlink-data';

/**
 * Thrown by the shared tar decoding (common/archive) for bytes that are not a well-formed
 * archive. It carries no HTTP status: the host and the guest agent translate it into their
 * own errors, since only they know the policy (first header or not, which code).
 */
export class TarFormatError extends Error {
  readonly reason: TarFormatReason;

  constructor(reason: TarFormatReason, message: string) {
    super(message);
    this.name = 'TarFormatError';
    this.reason = reason;
  }
}

/** True for a TarFormatError. */
export function isTarFormatError(value: unknown): value is TarFormatError {
  return value instanceof TarFormatError;
}
