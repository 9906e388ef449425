import { ExtendedHeaders, isExtensionType } from './extended-headers.js';
import { TarFormatError } from './tar-format-error.js';
import {
  blockPadding,
  decodeTarHeader,
  isZeroBlock,
  TAR_BLOCK,
  type TarHeader,
} from './tar-header.js';

/** What the decoder found in the bytes pushed so far, in stream order. */
export type TarEvent =
  /** An ordinary entry, its pax and GNU extensions already applied. */
  | { kind: 'entry'; header: TarHeader }
  /** The next bytes of the last entry's body (a view into the pushed chunk; copy to keep). */
  | { kind: 'data'; chunk: Buffer }
  /** The first zero block: no entry follows (the decoder still checks what trails it). */
  | { kind: 'end' };

type State =
  | { kind: 'header' }
  | { kind: 'body'; remaining: number; padding: number }
  | { kind: 'meta'; flag: string; remaining: number; padding: number; chunks: Buffer[] }
  | { kind: 'end'; zeroBlocks: number };

/**
 * A push-based, streaming tar decoder (ustar, pax and GNU forms). Feed it the decompressed
 * archive chunk by chunk; it returns the entries and body bytes each chunk completes and
 * throws a {@link TarFormatError} for bytes that are not a well-formed archive: a bad header,
 * a metadata header over `maxMetaBytes`, anything but zero blocks after the end-of-archive
 * marker, and (from {@link end}) a stream that stops inside a block, a body or before the two
 * zero blocks that end an archive. It decides nothing about names, types or limits; that is
 * the source policy's job. Memory: one partial block plus one metadata header.
 */
export class TarDecoder {
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  private readonly extensions = new ExtendedHeaders();
  private bytes = 0;
  private entryCount = 0;

  constructor(private readonly maxMetaBytes: number) {}

  /** Ordinary entries decoded so far (extension headers not counted). */
  get entries(): number {
    return this.entryCount;
  }

  /** Decodes the next bytes of the stream. */
  push(data: Uint8Array): TarEvent[] {
    const events: TarEvent[] = [];
    this.bytes += data.byteLength;
    const input = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const buf = this.pending.length > 0 ? Buffer.concat([this.pending, input]) : input;
    this.pending = Buffer.alloc(0);
    let offset = 0;
    while (offset < buf.length) {
      const state = this.state;
      if (state.kind === 'body' || state.kind === 'meta') {
        const take = Math.min(state.remaining + state.padding, buf.length - offset);
        const fromBody = Math.min(take, state.remaining);
        if (fromBody > 0) {
          const chunk = buf.subarray(offset, offset + fromBody);
          if (state.kind === 'body') events.push({ kind: 'data', chunk });
          else state.chunks.push(Buffer.from(chunk));
        }
        state.remaining -= fromBody;
        state.padding -= take - fromBody;
        offset += take;
        if (state.remaining === 0 && state.padding === 0) {
          if (state.kind === 'meta') this.extensions.apply(state.flag, Buffer.concat(state.chunks));
          this.state = { kind: 'header' };
        }
        continue;
      }
      if (buf.length - offset < TAR_BLOCK) {
        this.pending = Buffer.from(buf.subarray(offset));
        break;
      }
      const block = buf.subarray(offset, offset + TAR_BLOCK);
      offset += TAR_BLOCK;
      if (state.kind === 'end') {
        if (!isZeroBlock(block)) {
          throw new TarFormatError('data-after-end', 'data follows the end-of-archive marker');
        }
        state.zeroBlocks += 1;
        continue;
      }
      const event = this.header(block);
      if (event !== null) events.push(event);
    }
    return events;
  }

  /** Called at the end of the stream: throws unless the archive ended where it should. */
  end(): void {
    if (this.bytes === 0) throw new TarFormatError('empty', 'the source is empty');
    if (this.pending.length > 0 && !isZeroBlock(this.pending)) {
      throw new TarFormatError('truncated', 'the archive ends inside a block');
    }
    switch (this.state.kind) {
      case 'body':
      case 'meta':
        throw new TarFormatError('truncated', 'the archive ends inside an entry');
      case 'header':
        this.extensions.assertNonePending();
        if (this.entryCount === 0) {
          throw new TarFormatError('no-entries', 'the archive holds no entries');
        }
        throw new TarFormatError('no-end-marker', 'the archive has no end-of-archive marker');
      case 'end':
        if (this.state.zeroBlocks < 2) {
          throw new TarFormatError('no-end-marker', 'the end-of-archive marker is cut short');
        }
    }
  }

  private header(block: Buffer): TarEvent | null {
    const header = decodeTarHeader(block);
    if (header === null) {
      this.extensions.assertNonePending();
      if (this.entryCount === 0) {
        throw new TarFormatError('no-entries', 'the archive holds no entries');
      }
      this.state = { kind: 'end', zeroBlocks: 1 };
      return { kind: 'end' };
    }
    if (isExtensionType(header.type)) {
      // An extension header's body is read with its own size, never a pending pax size.
      const size = header.size;
      if (size > this.maxMetaBytes) {
        throw new TarFormatError(
          'metadata-too-large',
          `a tar metadata header of ${size} bytes is over the ${this.maxMetaBytes}-byte limit`,
        );
      }
      if (size === 0) {
        this.extensions.apply(header.type, Buffer.alloc(0));
      } else {
        const padding = blockPadding(size);
        this.state = { kind: 'meta', flag: header.type, remaining: size, padding, chunks: [] };
      }
      return null;
    }
    // Hardlinks never have data (ExtendedHeaders.resolve refuses a non-zero size).
    const entry = this.extensions.resolve(header);
    this.entryCount += 1;
    if (entry.size > 0) {
      this.state = { kind: 'body', remaining: entry.size, padding: blockPadding(entry.size) };
    }
    return { kind: 'entry', header: entry };
  }
}
