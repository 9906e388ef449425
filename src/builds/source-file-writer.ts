import { close, fdatasync, fsync, open, writev } from 'node:fs';
import { Writable } from 'node:stream';

/** Options of a {@link SourceFileWriter}. */
export interface SourceFileWriterOptions {
  /**
   * Bytes written between two background `fdatasync` calls. The kernel would otherwise keep
   * the whole upload dirty in the page cache (the dirty limits are a share of RAM, gigabytes
   * here) and write all of it to disk only in the final fsync, after the last byte arrived.
   */
  syncEveryBytes: number;
  /** Bytes buffered before back-pressure; what queued up meanwhile goes out in one writev. */
  highWaterMark: number;
}

/**
 * A new file (`wx`, mode 0600) written from a stream and durable when the stream finishes:
 * the last step before 'finish' is an fsync, so a build accepted once this resolved keeps its
 * whole source through a crash. While the bytes arrive, an `fdatasync` runs in the background
 * every `syncEveryBytes` (one at a time, never waited for by the writes), so the disk writes
 * overlap the upload and the final fsync only has the tail left to flush. The descriptor is
 * closed only after every sync issued on it has returned, so a descriptor number is never
 * synced after it was closed and reused.
 */
export class SourceFileWriter extends Writable {
  private fd: number | null = null;
  private sinceSync = 0;
  private syncing: Promise<void> | null = null;
  private syncFailure: Error | null = null;

  constructor(
    private readonly path: string,
    private readonly options: SourceFileWriterOptions,
  ) {
    super({ highWaterMark: options.highWaterMark });
    if (!(options.syncEveryBytes > 0)) throw new Error('syncEveryBytes must be positive');
  }

  override _construct(callback: (error?: Error | null) => void): void {
    // 'wx': the build directory is new; a leftover file would be a bug, not something to
    // overwrite.
    open(this.path, 'wx', 0o600, (err, fd) => {
      if (err) {
        callback(err);
        return;
      }
      this.fd = fd;
      callback();
    });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, callback: (error?: Error | null) => void) {
    this.writeAll([chunk], callback);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    callback: (error?: Error | null) => void,
  ): void {
    this.writeAll(
      chunks.map((c) => c.chunk),
      callback,
    );
  }

  override _final(callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    if (fd === null) {
      callback(new Error('the source file is not open'));
      return;
    }
    this.settled()
      .then(() => {
        if (this.syncFailure !== null) throw this.syncFailure;
        return new Promise<void>((resolve, reject) => {
          fsync(fd, (err) => {
            if (err) reject(err);
            else resolve();
          });
        });
      })
      .then(
        () => {
          callback();
        },
        (err: unknown) => {
          callback(err instanceof Error ? err : new Error(String(err)));
        },
      );
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    this.fd = null;
    void this.settled().then(() => {
      if (fd === null) {
        callback(error);
        return;
      }
      close(fd, (closeErr) => {
        callback(error ?? closeErr);
      });
    });
  }

  /** Resolves once no background sync is in flight (never rejects). */
  private async settled(): Promise<void> {
    while (this.syncing !== null) await this.syncing;
  }

  private writeAll(buffers: Buffer[], callback: (error?: Error | null) => void): void {
    const fd = this.fd;
    if (fd === null) {
      callback(new Error('the source file is not open'));
      return;
    }
    if (this.syncFailure !== null) {
      callback(this.syncFailure);
      return;
    }
    writev(fd, buffers, (err, written) => {
      if (err) {
        callback(err);
        return;
      }
      this.sinceSync += written;
      const rest = remainder(buffers, written);
      if (rest.length > 0) {
        // A short write (rare on a regular file, e.g. near a quota): write what is left.
        this.writeAll(rest, callback);
        return;
      }
      this.maybeSync(fd);
      callback();
    });
  }

  private maybeSync(fd: number): void {
    if (this.syncing !== null || this.sinceSync < this.options.syncEveryBytes) return;
    this.sinceSync = 0;
    this.syncing = new Promise<void>((resolve) => {
      fdatasync(fd, (err) => {
        if (err && this.syncFailure === null) this.syncFailure = err;
        this.syncing = null;
        resolve();
      });
    });
  }
}

/** What is left of `buffers` after the first `written` bytes. */
function remainder(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  const rest: Buffer[] = [];
  for (const buf of buffers) {
    if (skip >= buf.length) {
      skip -= buf.length;
      continue;
    }
    rest.push(skip > 0 ? buf.subarray(skip) : buf);
    skip = 0;
  }
  return rest;
}
