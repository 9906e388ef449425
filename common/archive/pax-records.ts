import { TarFormatError } from './tar-format-error.js';

/**
 * Parses the body of a pax extended header: records "<len> <key>=<value>\n", where <len> is
 * the decimal length of the whole record including itself and the newline (POSIX.1-2017 pax,
 * "pax Extended Header"). Values are raw bytes; a repeated key keeps its last value.
 */
export function parsePaxRecords(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) throw new TarFormatError('pax-record', 'a pax header record is malformed');
    const digits = body.subarray(pos, space).toString('latin1');
    const len = /^[0-9]+$/.test(digits) ? Number(digits) : NaN;
    if (!(len > space - pos + 1) || pos + len > body.length) {
      throw new TarFormatError('pax-record', 'a pax header record has a bad length');
    }
    if (body[pos + len - 1] !== 0x0a) {
      throw new TarFormatError('pax-record', 'a pax header record does not end in a newline');
    }
    const record = body.subarray(space + 1, pos + len - 1);
    const eq = record.indexOf(0x3d);
    if (eq === -1) throw new TarFormatError('pax-record', 'a pax header record has no "="');
    out.set(record.subarray(0, eq).toString('utf8'), Buffer.from(record.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

/** A pax `size` value: decimal digits only, at most 15 of them (always a safe integer). */
export function parsePaxSize(value: Buffer): number {
  const text = value.toString('latin1');
  if (!/^[0-9]{1,15}$/.test(text)) {
    throw new TarFormatError('pax-size', 'a pax size record is invalid');
  }
  return Number(text);
}
