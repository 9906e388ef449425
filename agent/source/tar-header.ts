import { AppError } from '../../src/errors/app-error.js';

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

export const TAR_BLOCK = 512;

/**
 * Decodes a header block. Returns null for an all-zero block (end of archive). A bad checksum
 * or number field is SOURCE_CORRUPT (or SOURCE_NOT_ARCHIVE for the first header).
 */
export function decodeTarHeader(block: Buffer, first: boolean): TarHeader | null {
  if (block.length !== TAR_BLOCK) {
    throw new AppError('SOURCE_CORRUPT', 'the archive ends inside a tar header');
  }
  if (block.every((b) => b === 0)) return null;
  const expected = parseNumber(block.subarray(148, 156), first);
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  if (sum !== expected) {
    throw new AppError(
      first ? 'SOURCE_NOT_ARCHIVE' : 'SOURCE_CORRUPT',
      first ? 'the source is not a tar archive' : 'a tar header checksum does not match',
    );
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
    mode: parseNumber(block.subarray(100, 108), first),
    size: parseNumber(block.subarray(124, 136), first),
    mtime: parseNumber(block.subarray(136, 148), first),
    type: String.fromCharCode(block[156] ?? 0),
    linkName: cBytes(block.subarray(157, 257)),
  };
}

/** Parses pax extended header records ("<len> <key>=<value>\n"). */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    if (body[pos] === 0) break;
    const space = body.indexOf(0x20, pos);
    if (space === -1) throw new AppError('SOURCE_CORRUPT', 'a pax header record is malformed');
    const len = Number(body.subarray(pos, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= space - pos + 1 || pos + len > body.length) {
      throw new AppError('SOURCE_CORRUPT', 'a pax header record has a bad length');
    }
    const record = body.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new AppError('SOURCE_CORRUPT', 'a pax header record has no "="');
    out.set(record.subarray(0, eq).toString('utf8'), record.subarray(eq + 1));
    pos += len;
  }
  return out;
}

function cBytes(b: Buffer): Buffer {
  const nul = b.indexOf(0);
  return Buffer.from(b.subarray(0, nul === -1 ? b.length : nul));
}

/** Octal (space/NUL terminated) or GNU base-256 (high bit set) numeric field. */
function parseNumber(field: Buffer, first: boolean): number {
  const lead = field[0] ?? 0;
  if (lead & 0x80) {
    if (lead === 0xff) throw corrupt(first, 'a negative tar number field');
    let value = lead & 0x7f;
    for (let i = 1; i < field.length; i++) {
      value = value * 256 + (field[i] ?? 0);
      if (value > Number.MAX_SAFE_INTEGER) throw corrupt(first, 'a tar number field overflows');
    }
    return value;
  }
  const text = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^[ ]+/, '');
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw corrupt(first, 'a tar number field is not octal');
  return parseInt(text, 8);
}

function corrupt(first: boolean, detail: string): AppError {
  return first
    ? new AppError('SOURCE_NOT_ARCHIVE', `the source is not a tar archive (${detail})`)
    : new AppError('SOURCE_CORRUPT', detail);
}
