/** Why a tar stream could not be decoded; the source policy maps each reason to one code. */
export type TarFormatReason =
  /** The stream holds no bytes at all. */
  | 'empty'
  /** The stream ends inside a 512-byte block, a body or a metadata header. */
  | 'truncated'
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
  /** A pax or GNU long-name header body is over the decoder's metadata limit. */
  | 'metadata-too-large'
  /** An extended header ('x', 'L', 'K') is not followed by the entry it describes. */
  | 'dangling-extension'
  /** A hardlink entry claims data, which readers disagree on how to skip. */
  | 'hardlink-data'
  /** The end-of-archive marker comes before any entry. */
  | 'no-entries'
  /** The stream ends without the two zero blocks that end an archive. */
  | 'no-end-marker'
  /** Something other than zero blocks follows the end-of-archive marker. */
  | 'data-after-end';

/**
 * Thrown by the shared tar decoding (common/archive) for bytes that are not a well-formed
 * archive. It carries no code of its own: the source policy (`toArchiveError`) decides which
 * code a reason becomes, once, for the host and the guest alike.
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
