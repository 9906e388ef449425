import type { Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';
import { OciError } from './oci-error.js';

/**
 * Bytes written between two background flushes. Without them the kernel keeps a whole layer
 * dirty in memory (background writeback starts at a share of RAM, gigabytes here) and the
 * commit's fsync then writes all of it to disk while the client waits for the PUT: a third
 * of a 256 MiB push. Flushing as the bytes arrive overlaps that disk time with receiving, and
 * the commit's fsync only has the tail left.
 */
const FLUSH_EVERY_BYTES = 16 * 1024 * 1024;

/**
 * The sink of one upload chunk: appends to the upload file, hashes the bytes on the way
 * (`hash`, when the upload's running hash is still in step with the file), stops with 416 at
 * the first byte past `maxBytes`, and flushes the file to disk in the background every
 * FLUSH_EVERY_BYTES. One stream instead of a hashing Transform in front of an fs.WriteStream:
 * buffered chunks go to the file in one `writev`. Durability is still the commit's fsync; the
 * flushes only shorten it. The file is closed (after any flush in flight) when the stream
 * finishes or fails.
 */
export class UploadFileWriter extends Writable {
  private handle: FileHandle | null = null;
  private readonly file: string;
  private readonly hash: Hash | undefined;
  private readonly maxBytes: number | undefined;
  private unflushed = 0;
  private flushing: Promise<void> | null = null;
  /** Bytes taken so far. */
  written = 0;

  constructor(options: {
    file: string;
    hash?: Hash | undefined;
    maxBytes?: number | undefined;
    highWaterMark: number;
  }) {
    super({ highWaterMark: options.highWaterMark });
    this.file = options.file;
    this.hash = options.hash;
    this.maxBytes = options.maxBytes;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    open(this.file, 'a').then(
      (handle) => {
        this.handle = handle;
        callback();
      },
      (err: unknown) => {
        callback(err as Error);
      },
    );
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    const buffers: Buffer[] = [];
    for (const { chunk } of chunks) {
      this.written += chunk.length;
      if (this.maxBytes !== undefined && this.written > this.maxBytes) {
        callback(
          new OciError('BLOB_UPLOAD_INVALID', 'chunk is longer than its Content-Range', {
            status: 416,
          }),
        );
        return;
      }
      this.hash?.update(chunk);
      buffers.push(chunk);
    }
    this.writeAll(buffers).then(
      () => {
        callback();
      },
      (err: unknown) => {
        callback(err as Error);
      },
    );
  }

  override _write(
    chunk: Buffer,
    encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ) {
    this._writev([{ chunk, encoding }], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.settle().then(
      () => {
        callback();
      },
      (err: unknown) => {
        callback(err as Error);
      },
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.settle().then(
      () => {
        callback(error);
      },
      (err: unknown) => {
        callback(error ?? (err as Error));
      },
    );
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    const handle = this.handle;
    if (handle === null) throw new Error('upload file is not open');
    let pending = buffers;
    let bytes = pending.reduce((n, b) => n + b.length, 0);
    this.unflushed += bytes;
    // writev may take less than everything (a signal, a full disk's last bytes): go on from
    // where it stopped.
    while (bytes > 0) {
      const { bytesWritten } = await handle.writev(pending);
      bytes -= bytesWritten;
      pending = skip(pending, bytesWritten);
    }
    if (this.unflushed >= FLUSH_EVERY_BYTES && this.flushing === null) {
      this.unflushed = 0;
      // A failed flush is not this chunk's failure: the commit's fsync reports it.
      this.flushing = handle.datasync().then(
        () => {
          this.flushing = null;
        },
        () => {
          this.flushing = null;
        },
      );
    }
  }

  /** Waits for a flush in flight, then closes the file (once). */
  private async settle(): Promise<void> {
    await this.flushing;
    const handle = this.handle;
    this.handle = null;
    if (handle !== null) await handle.close();
  }
}

/** `buffers` without their first `n` bytes. */
function skip(buffers: Buffer[], n: number): Buffer[] {
  let left = n;
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (left >= b.length) {
      left -= b.length;
      continue;
    }
    out.push(left > 0 ? b.subarray(left) : b);
    left = 0;
  }
  return out;
}
