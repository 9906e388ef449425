import { posix } from 'node:path';
import { AppError } from '../errors/app-error.js';

const BLOCK = 512;
/** Largest pax or GNU long-name header body accepted (names are limited far below this). */
const MAX_META_BYTES = 1024 * 1024;

/** Limits checked while the archive streams by (config.builds.*). */
export interface TarLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
  maxPathBytes: number;
}

/** What a complete, valid archive held. */
export interface TarSummary {
  entries: number;
  unpackedBytes: number;
}

type State =
  | { kind: 'header' }
  | { kind: 'body'; remaining: number; padding: number }
  | { kind: 'meta'; flag: string; remaining: number; padding: number; chunks: Buffer[] }
  | { kind: 'end'; zeroBlocks: number };

/**
 * A strict, streaming walker over ustar/pax/GNU tar headers. It never unpacks: it checks each
 * header as the bytes pass — checksum, relative names staying inside the root, no device nodes
 * or fifos, hardlinks only to earlier entries, and the limits — and throws an AppError with
 * the precise code on the first violation. Memory is bounded by one block plus one metadata
 * header (≤ 1 MiB) plus the set of names seen (bounded by maxEntries × maxPathBytes).
 */
export class TarInspector {
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private entries = 0;
  private unpackedBytes = 0;
  private paxPath: string | null = null;
  private paxLinkPath: string | null = null;
  private paxSize: number | null = null;
  private gnuLongName: string | null = null;
  private gnuLongLink: string | null = null;
  private readonly seen = new Set<string>();

  constructor(private readonly limits: TarLimits) {}

  /** Feeds the next bytes of the (decompressed) tar stream. */
  push(data: Uint8Array): void {
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, input]) : input;
    this.pending = Buffer.alloc(0);
    let offset = 0;
    while (offset < buf.length) {
      const state = this.state;
      if (state.kind === 'body') {
        const take = Math.min(state.remaining + state.padding, buf.length - offset);
        const fromBody = Math.min(take, state.remaining);
        state.remaining -= fromBody;
        state.padding -= take - fromBody;
        offset += take;
        if (state.remaining === 0 && state.padding === 0) this.state = { kind: 'header' };
        continue;
      }
      if (state.kind === 'meta') {
        const take = Math.min(state.remaining + state.padding, buf.length - offset);
        const fromBody = Math.min(take, state.remaining);
        if (fromBody > 0) state.chunks.push(Buffer.from(buf.subarray(offset, offset + fromBody)));
        state.remaining -= fromBody;
        state.padding -= take - fromBody;
        offset += take;
        if (state.remaining === 0 && state.padding === 0) {
          this.applyMeta(state.flag, Buffer.concat(state.chunks));
          this.state = { kind: 'header' };
        }
        continue;
      }
      if (buf.length - offset < BLOCK) {
        this.pending = Buffer.from(buf.subarray(offset));
        return;
      }
      const block = buf.subarray(offset, offset + BLOCK);
      offset += BLOCK;
      if (state.kind === 'end') {
        if (!isZero(block)) {
          throw new AppError('SOURCE_CORRUPT', 'Data follows the end-of-archive marker.');
        }
        state.zeroBlocks += 1;
        continue;
      }
      this.header(block);
    }
  }

  /** Called at end of stream; throws SOURCE_CORRUPT for a truncated archive. */
  end(): TarSummary {
    if (this.pending.length > 0 && !isZero(this.pending)) {
      throw new AppError('SOURCE_CORRUPT', 'The archive ends inside a block.');
    }
    if (this.state.kind !== 'end' || this.state.zeroBlocks < 2) {
      if (this.state.kind === 'header' && this.entries === 0) {
        throw new AppError('SOURCE_NOT_ARCHIVE');
      }
      throw new AppError('SOURCE_CORRUPT', 'The archive is truncated (no end-of-archive marker).');
    }
    return { entries: this.entries, unpackedBytes: this.unpackedBytes };
  }

  private header(block: Buffer): void {
    if (isZero(block)) {
      if (this.entries === 0 && this.paxPath === null && this.gnuLongName === null) {
        throw new AppError('SOURCE_NOT_ARCHIVE', 'The archive holds no entries.');
      }
      this.state = { kind: 'end', zeroBlocks: 1 };
      return;
    }
    if (!checksumOk(block)) {
      throw new AppError(
        this.entries === 0 ? 'SOURCE_NOT_ARCHIVE' : 'SOURCE_CORRUPT',
        this.entries === 0 ? undefined : 'A tar header checksum does not match.',
      );
    }
    const flag = String.fromCharCode(block[156] ?? 0);
    const size = this.paxSize ?? parseNumber(block.subarray(124, 136));
    const padding = (BLOCK - (size % BLOCK)) % BLOCK;

    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > MAX_META_BYTES) {
        throw new AppError('SOURCE_PATH_TOO_LONG', 'A tar metadata header is too large.');
      }
      this.state = { kind: 'meta', flag, remaining: size, padding, chunks: [] };
      if (size === 0) this.state = { kind: 'header' };
      return;
    }

    const magic = block.subarray(257, 262).toString('latin1');
    let name = cString(block.subarray(0, 100));
    if (magic === 'ustar') {
      const prefix = cString(block.subarray(345, 500));
      if (prefix !== '') name = `${prefix}/${name}`;
    }
    name = this.paxPath ?? this.gnuLongName ?? name;
    const linkName = this.paxLinkPath ?? this.gnuLongLink ?? cString(block.subarray(157, 257));
    this.paxPath = null;
    this.paxLinkPath = null;
    this.paxSize = null;
    this.gnuLongName = null;
    this.gnuLongLink = null;

    this.entries += 1;
    if (this.entries > this.limits.maxEntries) {
      throw new AppError('SOURCE_TOO_MANY_ENTRIES', undefined, {
        details: { limit: this.limits.maxEntries },
      });
    }
    const path = this.checkPath(name);

    switch (flag) {
      case '0':
      case '\0':
      case '7':
        this.unpackedBytes += size;
        if (this.unpackedBytes > this.limits.maxUnpackedBytes) {
          throw new AppError('SOURCE_UNPACKED_TOO_LARGE', undefined, {
            details: { limit: this.limits.maxUnpackedBytes },
          });
        }
        break;
      case '5':
        break;
      case '2':
        if (linkName === '' || linkName.includes('\0')) {
          throw new AppError('SOURCE_BAD_LINK', `Symlink ${path} has no valid target.`);
        }
        break;
      case '1': {
        const target = normalize(linkName);
        if (target === null || !this.seen.has(target)) {
          throw new AppError(
            'SOURCE_BAD_LINK',
            `Hardlink ${path} must point to an earlier entry of the archive.`,
          );
        }
        break;
      }
      case '3':
      case '4':
      case '6':
        throw new AppError('SOURCE_FORBIDDEN_ENTRY', `Entry ${path} is a device node or fifo.`);
      default:
        throw new AppError(
          'SOURCE_FORBIDDEN_ENTRY',
          `Entry ${path} has unsupported tar type ${JSON.stringify(flag)}.`,
        );
    }
    // Hardlinks may only name earlier non-directory entries.
    if (flag !== '5') this.seen.add(path);
    // A hardlink's size field describes its target and no data follows it.
    this.state =
      size > 0 && flag !== '1' ? { kind: 'body', remaining: size, padding } : { kind: 'header' };
  }

  private checkPath(raw: string): string {
    if (Buffer.byteLength(raw, 'utf8') > this.limits.maxPathBytes) {
      throw new AppError('SOURCE_PATH_TOO_LONG', undefined, {
        details: { limit: this.limits.maxPathBytes },
      });
    }
    const path = normalize(raw);
    if (path === null) {
      throw new AppError('SOURCE_UNSAFE_PATH', `Entry ${JSON.stringify(raw)} leaves the root.`);
    }
    return path;
  }

  private applyMeta(flag: string, body: Buffer): void {
    if (flag === 'L' || flag === 'K') {
      const value = cString(body);
      if (flag === 'L') this.gnuLongName = value;
      else this.gnuLongLink = value;
      return;
    }
    const records = parsePax(body);
    // Global headers ('g') apply to every later entry; Kiln refuses path/size overrides there.
    if (flag === 'g') {
      if (records.has('path') || records.has('linkpath') || records.has('size')) {
        throw new AppError('SOURCE_FORBIDDEN_ENTRY', 'Global pax headers may not set names.');
      }
      return;
    }
    const path = records.get('path');
    const linkPath = records.get('linkpath');
    const size = records.get('size');
    if (path !== undefined) this.paxPath = path;
    if (linkPath !== undefined) this.paxLinkPath = linkPath;
    if (size !== undefined) {
      if (!/^\d{1,15}$/.test(size)) throw new AppError('SOURCE_CORRUPT', 'Bad pax size.');
      this.paxSize = Number(size);
    }
  }
}

/** Normalizes an entry name; null when it is absolute, empty or leaves the root. */
function normalize(raw: string): string | null {
  if (raw === '' || raw.includes('\0') || raw.startsWith('/')) return null;
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) return '.';
  if (parts.some((p) => p === '..')) return null;
  return posix.join(...parts);
}

function isZero(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

function cString(field: Buffer): string {
  const nul = field.indexOf(0);
  return field.subarray(0, nul === -1 ? field.length : nul).toString('utf8');
}

/** Octal, or GNU base-256 when the high bit of the first byte is set. */
function parseNumber(field: Buffer): number {
  const first = field[0] ?? 0;
  if (first & 0x80) {
    let value = first & 0x7f;
    for (const b of field.subarray(1)) value = value * 256 + b;
    if (!Number.isSafeInteger(value)) throw new AppError('SOURCE_CORRUPT', 'Bad tar size.');
    return value;
  }
  const text = field.toString('latin1').replace(/\0.*$/s, '').trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new AppError('SOURCE_CORRUPT', 'Bad tar number field.');
  return parseInt(text, 8);
}

function checksumOk(block: Buffer): boolean {
  const stored = block.subarray(148, 156).toString('latin1').replace(/\0.*$/s, '').trim();
  if (!/^[0-7]{1,7}$/.test(stored)) return false;
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : (block[i] ?? 0);
  return sum === parseInt(stored, 8);
}

/** pax records: "<len> <key>=<value>\n" (POSIX.1-2001 pax format). */
function parsePax(body: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let offset = 0;
  while (offset < body.length) {
    const space = body.indexOf(0x20, offset);
    if (space === -1) throw new AppError('SOURCE_CORRUPT', 'Bad pax header.');
    const len = Number(body.subarray(offset, space).toString('latin1'));
    if (!Number.isInteger(len) || len <= space - offset || offset + len > body.length) {
      throw new AppError('SOURCE_CORRUPT', 'Bad pax record length.');
    }
    const record = body.subarray(space + 1, offset + len - 1).toString('utf8');
    const eq = record.indexOf('=');
    if (eq === -1) throw new AppError('SOURCE_CORRUPT', 'Bad pax record.');
    out.set(record.slice(0, eq), record.slice(eq + 1));
    offset += len;
  }
  return out;
}
