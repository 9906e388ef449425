import type { Hash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Writable } from 'node:stream';

/** Options of a {@link FlushingFileWriter}. */
export interface FlushingFileWriterOptions {
  file: string;
  /**
   * `a`: append to a file that exists (a registry upload's next chunk); `wx`: create a new
   * file with mode 0600 and fail if one is there (a build's source in its fresh directory).
   */
  flags: 'a' | 'wx';
  /**
   * Bytes written between two background `fdatasync` calls. Without them the kernel keeps the
   * whole stream dirty in the page cache (background writeback starts at a share of RAM,
   * gigabytes here) and the final fsync writes all of it to disk after the last byte arrived.
   */
  flushEveryBytes: number;
  /** Bytes buffered before back-pressure; what queued up meanwhile goes out in one writev. */
  highWaterMark: number;
  /** Updated with every byte on its way to the file. */
  hash?: Hash | undefined;
  /** The stream fails with `error()` at its first byte past `bytes`; nothing past it is written. */
  limit?: { bytes: number; error: () => Error } | undefined;
  /** fsync the file before the stream finishes, so 'finish' means durable. */
  syncOnFinish?: boolean | undefined;
}

/**
 * A file written from a stream with its disk writes overlapping the stream: it appends with
 * `writev` (what arrived while the last write ran goes out as one call), hashes on the way
 * when asked, and every `flushEveryBytes` starts an `fdatasync` in the background. One flush
 * at a time, never waited for by the writes, so the stream runs at the speed of the page cache
 * while the disk catches up behind it, and a final fsync has only the tail to write.
 *
 * A failed flush fails the stream (the next write or the finish): Linux reports a writeback
 * error once per open file, so a later fsync, even on a new descriptor, may not see it again.
 * The file is closed when the stream finishes or fails, only after the flush in flight has
 * returned, so a descriptor number is never synced after it was closed and reused.
 */
export class FlushingFileWriter extends Writable {
  private handle: FileHandle | null = null;
  private readonly options: FlushingFileWriterOptions;
  private unflushed = 0;
  private flushing: Promise<void> | null = null;
  private flushFailure: Error | null = null;
  /** Bytes taken so far. */
  written = 0;

  constructor(options: FlushingFileWriterOptions) {
    super({ highWaterMark: options.highWaterMark });
    if (!(options.flushEveryBytes > 0)) throw new Error('flushEveryBytes must be positive');
    this.options = options;
  }

  override _construct(callback: (error?: Error | null) => void): void {
    const { file, flags } = this.options;
    open(file, flags, flags === 'wx' ? 0o600 : undefined).then(
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
    const { hash, limit } = this.options;
    const buffers: Buffer[] = [];
    for (const { chunk } of chunks) {
      this.written += chunk.length;
      if (limit !== undefined && this.written > limit.bytes) {
        callback(limit.error());
        return;
      }
      hash?.update(chunk);
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
  ): void {
    this._writev([{ chunk, encoding }], callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.finish().then(
      () => {
        callback();
      },
      (err: unknown) => {
        callback(err as Error);
      },
    );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.close().then(
      () => {
        callback(error);
      },
      (err: unknown) => {
        callback(error ?? (err as Error));
      },
    );
  }

  private async writeAll(buffers: Buffer[]): Promise<void> {
    const handle = this.openHandle();
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
    if (this.unflushed >= this.options.flushEveryBytes && this.flushing === null) {
      this.unflushed = 0;
      this.flushing = handle.datasync().then(
        () => {
          this.flushing = null;
        },
        (err: unknown) => {
          this.flushing = null;
          this.flushFailure ??= err as Error;
        },
      );
    }
  }

  /** The open file, or the failure of an earlier flush. */
  private openHandle(): FileHandle {
    if (this.flushFailure !== null) throw this.flushFailure;
    if (this.handle === null) throw new Error('the file is not open');
    return this.handle;
  }

  private async finish(): Promise<void> {
    await this.flushing;
    const handle = this.openHandle();
    if (this.options.syncOnFinish === true) await handle.sync();
    await this.close();
  }

  /** Waits for a flush in flight, then closes the file (once). */
  private async close(): Promise<void> {
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
