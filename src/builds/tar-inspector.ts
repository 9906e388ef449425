import { posix } from 'node:path';
import { ExtendedHeaders, isExtensionType } from '../../common/archive/extended-headers.js';
import { isTarFormatError } from '../../common/archive/tar-format-error.js';
import {
  blockPadding,
  decodeTarHeader,
  isZeroBlock,
  TAR_BLOCK,
} from '../../common/archive/tar-header.js';
import { AppError } from '../errors/app-error.js';

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
 * the precise code on the first violation. Header, pax and GNU long-name decoding is shared
 * with the guest's unpacker (common/archive); the checks and codes here are the host's policy.
 * Memory is bounded by one block plus one metadata header (≤ 1 MiB) plus the set of names
 * seen (bounded by maxEntries × maxPathBytes).
 */
export class TarInspector {
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private entries = 0;
  private unpackedBytes = 0;
  private readonly extensions = new ExtendedHeaders();
  private readonly seen = new Set<string>();

  constructor(private readonly limits: TarLimits) {}

  /** Feeds the next bytes of the (decompressed) tar stream. */
  push(data: Uint8Array): void {
    try {
      this.walk(data);
    } catch (err) {
      throw this.toAppError(err);
    }
  }

  private walk(data: Uint8Array): void {
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
          this.extensions.apply(state.flag, Buffer.concat(state.chunks));
          this.state = { kind: 'header' };
        }
        continue;
      }
      if (buf.length - offset < TAR_BLOCK) {
        this.pending = Buffer.from(buf.subarray(offset));
        return;
      }
      const block = buf.subarray(offset, offset + TAR_BLOCK);
      offset += TAR_BLOCK;
      if (state.kind === 'end') {
        if (!isZeroBlock(block)) {
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
    if (this.pending.length > 0 && !isZeroBlock(this.pending)) {
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
    const header = decodeTarHeader(block);
    if (header === null) {
      this.extensions.assertNonePending();
      if (this.entries === 0) {
        throw new AppError('SOURCE_NOT_ARCHIVE', 'The archive holds no entries.');
      }
      this.state = { kind: 'end', zeroBlocks: 1 };
      return;
    }
    if (isExtensionType(header.type)) {
      // An extension header's body is read with its own size, never a pending pax size.
      const size = header.size;
      if (size > MAX_META_BYTES) {
        throw new AppError('SOURCE_PATH_TOO_LONG', 'A tar metadata header is too large.');
      }
      const padding = blockPadding(size);
      this.state = { kind: 'meta', flag: header.type, remaining: size, padding, chunks: [] };
      if (size === 0) {
        this.extensions.apply(header.type, Buffer.alloc(0));
        this.state = { kind: 'header' };
      }
      return;
    }

    const entry = this.extensions.resolve(header);
    const flag = entry.type;
    const size = entry.size;
    const padding = blockPadding(size);
    const name = entry.name.toString('utf8');
    const linkName = entry.linkName.toString('utf8');

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
    // Hardlinks never have data (ExtendedHeaders.resolve refuses a non-zero size).
    this.state = size > 0 ? { kind: 'body', remaining: size, padding } : { kind: 'header' };
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

  /**
   * Maps a decoding failure to the host's codes: a bad checksum before the first entry means
   * the upload is not a tar archive at all.
   */
  private toAppError(err: unknown): unknown {
    if (!isTarFormatError(err)) return err;
    switch (err.reason) {
      case 'checksum':
        return this.entries === 0
          ? new AppError('SOURCE_NOT_ARCHIVE', undefined, { cause: err })
          : new AppError('SOURCE_CORRUPT', 'A tar header checksum does not match.', { cause: err });
      case 'pax-global-override':
        return new AppError('SOURCE_FORBIDDEN_ENTRY', 'Global pax headers may not set names.', {
          cause: err,
        });
      case 'truncated-header':
      case 'number':
      case 'pax-record':
      case 'pax-size':
      case 'dangling-extension':
      case 'hardlink-data':
        return new AppError('SOURCE_CORRUPT', `The archive is corrupt: ${err.message}.`, {
          cause: err,
        });
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
