import { TarFormatError } from './tar-format-error.js';

/** Tar archives are a sequence of 512-byte blocks (POSIX.1-2017 pax, "ustar Interchange Format"). */
export const TAR_BLOCK = 512;

/** One decoded 512-byte tar header (POSIX ustar, GNU and v7 forms). */
export interface TarHeader {
  /** Raw name bytes (ustar prefix joined); pax/GNU long names override it. */
  name: Buffer;
  mode: number;
  size: number;
  mtime: number;
  /** Type flag character; '\0' is an old-style regular file. */
  type: string;
  linkName: Buffer;
}

/**
 * Decodes a header block. Returns null for an all-zero block (the end-of-archive marker).
 * Throws a TarFormatError for a short block, a bad checksum or a bad numeric field; the
 * checksum is verified before any other field is trusted.
 */
export function decodeTarHeader(block: Buffer): TarHeader | null {
  if (block.length !== TAR_BLOCK) {
    throw new TarFormatError('truncated', 'the archive ends inside a tar header');
  }
  if (isZeroBlock(block)) return null;
  if (!checksumMatches(block)) {
    throw new TarFormatError('checksum', 'a tar header checksum does not match');
  }
  const magic = block.subarray(257, 263).toString('latin1');
  let name = cBytes(block.subarray(0, 100));
  // Only POSIX ustar ("ustar\0") has the prefix field; GNU ("ustar  ") keeps times there.
  if (magic === 'ustar\0') {
    const prefix = cBytes(block.subarray(345, 500));
    if (prefix.length > 0) name = Buffer.concat([prefix, Buffer.from('/'), name]);
  }
  return {
    name,
    mode: parseNumber(block.subarray(100, 108)),
    size: parseNumber(block.subarray(124, 136)),
    mtime: parseNumber(block.subarray(136, 148)),
    type: String.fromCharCode(block[156] ?? 0),
    linkName: cBytes(block.subarray(157, 257)),
  };
}

/** True when every byte is zero (end-of-archive blocks and their padding). */
export function isZeroBlock(block: Uint8Array): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/** Bytes of zero padding after a body of `size` bytes, up to the next block boundary. */
export function blockPadding(size: number): number {
  return (TAR_BLOCK - (size % TAR_BLOCK)) % TAR_BLOCK;
}

/** A NUL-terminated field: the bytes before the first NUL, copied. */
export function cBytes(field: Buffer): Buffer {
  const nul = field.indexOf(0);
  return Buffer.from(field.subarray(0, nul === -1 ? field.length : nul));
}

/**
 * The checksum field holds 1–7 octal digits (space/NUL terminated, never base-256): the sum
 * of all header bytes with the checksum field itself counted as eight spaces.
 */
function checksumMatches(block: Buffer): boolean {
  const stored = octalText(block.subarray(148, 156));
  if (stored === null || !/^[0-7]{1,7}$/.test(stored)) return false;
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === parseInt(stored, 8);
}

/**
 * Octal digits between leading spaces and trailing spaces/NULs, '' for a blank field, null
 * when anything else (such as bytes after the terminator) is present.
 */
function octalText(field: Buffer): string | null {
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[ ]+/, '');
  return /^[0-7]*$/.test(text) ? text : null;
}

/** Octal (space/NUL terminated) or GNU base-256 (high bit set) numeric field. */
function parseNumber(field: Buffer): number {
  const lead = field[0] ?? 0;
  if (lead & 0x80) {
    if (lead === 0xff) throw new TarFormatError('number', 'a negative tar number field');
    let value = lead & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) {
        throw new TarFormatError('number', 'a tar number field overflows');
      }
    }
    return value;
  }
  const text = octalText(field);
  if (text === null) throw new TarFormatError('number', 'a tar number field is not octal');
  return text === '' ? 0 : parseInt(text, 8);
}
