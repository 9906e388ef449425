import { EventEmitter } from 'node:events';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { UpstreamBlob } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';
import { newHash, type ParsedDigest } from '../digest.js';

/** Bytes one reader takes from the file per read. */
const READ_CHUNK_BYTES = 1024 * 1024;
/**
 * Recent chunks kept in memory, so readers that keep up with the download are served the
 * upstream's own buffers (no file read, no new allocation); slower readers read the file.
 */
const RING_BYTES = 8 * 1024 * 1024;
/** Received bytes not yet written to the file before the upstream is read again. */
const MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024;

/** What an InflightBlob needs. */
export interface InflightBlobOptions {
  /** The temporary file the download is written to; it must not exist yet. */
  file: string;
  digest: ParsedDigest;
  upstream: UpstreamBlob;
  /** Names the blob in error messages (`docker.io`, `library/busybox`). */
  target: { upstream: string; repository: string };
  /** Milliseconds without a byte from the upstream before the download is given up. */
  idleTimeoutMs: number;
  /**
   * Makes the verified, fsynced file the stored blob (rename into place, record it). Runs
   * once, only when every byte arrived and the digest matched.
   */
  commit: (file: string, size: number) => Promise<void>;
  logger: Logger;
}

/** One client's view of a blob being downloaded: written out once, by `send` or `stream`. */
export interface BlobFollower {
  /**
   * Writes the blob with `write`, which resolves once the chunk was taken (its memory may then
   * be reused); resolves at the verified end, rejects when the download fails.
   */
  send(write: (chunk: Buffer) => Promise<void>): Promise<void>;
  /** The blob as a stream, destroyed with the error when the download fails. */
  stream(): Readable;
}

/**
 * One blob being downloaded from an upstream into a temporary file while it is hashed, and
 * read by any number of clients at once as it grows (a reader waits at the end of the file
 * for more). The download does not depend on any client: a slow or vanished client neither
 * slows nor stops it, so the blob is fetched once however many ask. Until the digest is
 * verified a reader is given every byte but the last, so no client ever receives a whole blob
 * that turns out wrong; on a mismatch (or a broken download) every reader is destroyed with
 * the error — the client's response is cut short — and the file is removed, never stored.
 *
 * The data path: each upstream chunk is hashed and kept in a small ring in memory, and written
 * to the file in batches (writev) while the next chunks arrive; readers that keep up are given
 * the ring's buffers, others read the file. Once the digest is verified readers get the last
 * byte at once; the fsync, rename and rows follow, so a client never waits for the disk.
 */
export class InflightBlob {
  readonly digest: ParsedDigest;
  /** The size the upstream announced, or null. */
  readonly size: number | null;
  /** Settles when the blob is stored (resolves) or the download failed (rejects). */
  readonly done: Promise<void>;

  private readonly handle: FileHandle;
  private readonly options: InflightBlobOptions;
  private readonly events = new EventEmitter();
  /** Bytes received from the upstream (and hashed). */
  private received = 0;
  /** Bytes written to the file (a prefix of those received). */
  private onDisk = 0;
  /** Recent chunks by offset, oldest first (see RING_BYTES). */
  private readonly ring: { offset: number; bytes: Buffer }[] = [];
  private ringBytes = 0;
  /** Chunks received but not yet written. */
  private unwritten: Buffer[] = [];
  private unwrittenBytes = 0;
  private writing: Promise<void> | null = null;
  private writeError: Error | null = null;
  /** Every byte arrived and the digest matched: readers may have the last byte. */
  private verified = false;
  private state: 'running' | 'stored' | 'failed' = 'running';
  /** Why the download failed, set at once (`state` follows once the file writes have drained). */
  private error: Error | null = null;
  private readers = 0;
  private closed = false;

  private constructor(handle: FileHandle, options: InflightBlobOptions) {
    this.handle = handle;
    this.options = options;
    this.digest = options.digest;
    this.size = options.upstream.size;
    this.events.setMaxListeners(0);
    this.done = this.run();
    // Settling with nobody waiting is normal (every client went away); not an unhandled rejection.
    this.done.catch(() => undefined);
  }

  /** Creates the temporary file and starts the download. */
  static async start(options: InflightBlobOptions): Promise<InflightBlob> {
    let handle: FileHandle;
    try {
      handle = await open(options.file, 'wx+', 0o600);
    } catch (err) {
      options.upstream.abort(new Error('the download file could not be created'));
      throw err;
    }
    return new InflightBlob(handle, options);
  }

  /** Stops the download (shutdown): readers get the error, nothing is stored. */
  abort(reason: Error): void {
    if (this.state === 'running') this.options.upstream.abort(reason);
  }

  /** True once the download failed: it will store nothing, and a new request must not join it. */
  get failed(): boolean {
    return this.error !== null;
  }

  /** Bytes received so far. */
  get written(): number {
    return this.received;
  }

  /**
   * Follows the blob from its first byte as the download goes; null once the download settled
   * and its file was closed (the blob is then stored, or refused). The follower must be used
   * once, by `send` or by `stream`.
   */
  follow(): BlobFollower | null {
    if (this.closed) return null;
    this.readers += 1;
    let used = false;
    const claim = () => {
      if (used) throw new Error('a blob follower is used once');
      used = true;
    };
    return {
      send: async (write) => {
        claim();
        // File reads (a follower more than the ring behind) reuse one buffer: `write`
        // resolves once the chunk was taken.
        let buffer: Buffer | null = null;
        const scratch = () => (buffer ??= Buffer.allocUnsafe(READ_CHUNK_BYTES));
        try {
          for (let position = 0; ;) {
            const chunk = await this.next(position, scratch);
            if (chunk === null) return;
            position += chunk.length;
            await write(chunk);
          }
        } finally {
          this.readers -= 1;
          await this.closeIfIdle();
        }
      },
      stream: () => {
        claim();
        return this.readable();
      },
    };
  }

  /** The blob as a Readable (each file read in a new buffer: a stream keeps what it is given). */
  private readable(): Readable {
    let position = 0;
    let pumping = false;
    const stream: Readable = new Readable({
      highWaterMark: READ_CHUNK_BYTES,
      read: () => {
        if (pumping) return;
        pumping = true;
        this.next(position, () => Buffer.allocUnsafe(READ_CHUNK_BYTES))
          .then((chunk) => {
            pumping = false;
            if (chunk === null) {
              stream.push(null);
              return;
            }
            position += chunk.length;
            stream.push(chunk);
          })
          .catch((err: unknown) => {
            pumping = false;
            stream.destroy(err as Error);
          });
      },
      destroy: (err, cb) => {
        this.readers -= 1;
        this.closeIfIdle().then(
          () => {
            cb(err);
          },
          () => {
            cb(err);
          },
        );
      },
    });
    return stream;
  }

  /**
   * The next bytes after `position` once there are any, null at the verified end. Bytes no
   * longer in the ring are read from the file into `buffer()`.
   */
  private async next(position: number, buffer: () => Buffer): Promise<Buffer | null> {
    for (;;) {
      // Hold back the last byte until the digest is verified.
      const limit = this.verified ? this.received : Math.max(0, this.received - 1);
      if (position < limit) {
        const held = this.fromRing(position, limit);
        if (held !== null) return held;
        const end = Math.min(limit, this.onDisk, position + READ_CHUNK_BYTES);
        if (position < end) {
          const into = buffer();
          const { bytesRead } = await this.handle.read(into, 0, end - position, position);
          return into.subarray(0, bytesRead);
        }
      }
      // A verified blob is whole even if storing it failed afterwards.
      if (position >= limit && this.verified) return null;
      if (this.state === 'failed') throw this.error ?? new Error('download failed');
      await new Promise<void>((resolve) => {
        this.events.once('change', resolve);
      });
    }
  }

  /** The bytes from `position` (below `limit`) in the ring's chunk holding it, or null. */
  private fromRing(position: number, limit: number): Buffer | null {
    const first = this.ring[0];
    if (first === undefined || position < first.offset) return null;
    for (const chunk of this.ring) {
      const end = chunk.offset + chunk.bytes.length;
      if (position < end) {
        return chunk.bytes.subarray(position - chunk.offset, Math.min(end, limit) - chunk.offset);
      }
    }
    return null;
  }

  /** Keeps a received chunk for readers and queues it for the file. */
  private accept(chunk: Buffer): void {
    this.ring.push({ offset: this.received, bytes: chunk });
    this.ringBytes += chunk.length;
    this.received += chunk.length;
    this.unwritten.push(chunk);
    this.unwrittenBytes += chunk.length;
    this.trimRing();
    this.writing ??= this.flush();
    this.events.emit('change');
  }

  /** Drops the oldest ring chunks past RING_BYTES, once they are in the file. */
  private trimRing(): void {
    for (;;) {
      const oldest = this.ring[0];
      if (oldest === undefined || this.ringBytes - oldest.bytes.length < RING_BYTES) return;
      if (oldest.offset + oldest.bytes.length > this.onDisk) return;
      this.ring.shift();
      this.ringBytes -= oldest.bytes.length;
    }
  }

  /** Writes the queued chunks in batches until none is left. */
  private async flush(): Promise<void> {
    try {
      while (this.unwritten.length > 0) {
        const batch = this.unwritten;
        this.unwritten = [];
        this.unwrittenBytes = 0;
        let buffers: Buffer[] = batch;
        while (buffers.length > 0) {
          const { bytesWritten } = await this.handle.writev(buffers, this.onDisk);
          this.onDisk += bytesWritten;
          buffers = remainder(buffers, bytesWritten);
        }
        this.trimRing();
        this.events.emit('change');
      }
    } catch (err) {
      this.writeError = err instanceof Error ? err : new Error(String(err));
    } finally {
      this.writing = null;
    }
  }

  /** Waits until every received byte is in the file; throws a write's error. */
  private async drained(): Promise<void> {
    while (this.writing !== null) await this.writing;
    if (this.writeError !== null) throw this.writeError;
  }

  private async run(): Promise<void> {
    const { upstream, digest, target } = this.options;
    const hash = newHash(digest.algorithm);
    // One timer, pushed back by each chunk (refresh() re-arms it without a new timer).
    const idle = setTimeout(() => {
      upstream.abort(new Error('idle'));
    }, this.options.idleTimeoutMs);
    const fail = (message: string, cause?: unknown) =>
      new UpstreamError('invalid', { ...target, reference: digest.text }, message, { cause });
    try {
      const chunks = upstream.body[Symbol.asyncIterator]();
      for (;;) {
        let result: IteratorResult<unknown>;
        try {
          result = await chunks.next();
        } catch (err) {
          throw new UpstreamError(
            'unreachable',
            { ...target, reference: digest.text },
            `upstream ${target.upstream} broke off the download of ${target.repository}@${digest.text}`,
            { cause: err },
          );
        }
        if (result.done === true) break;
        const chunk = result.value as Buffer;
        idle.refresh();
        if (this.size !== null && this.received + chunk.length > this.size) {
          upstream.body.destroy();
          throw fail(
            `upstream ${target.upstream} sent more bytes than announced for ${target.repository}@${digest.text}`,
          );
        }
        hash.update(chunk);
        this.accept(chunk);
        if (this.writeError !== null) throw this.writeError;
        // Back-pressure: do not take more from the upstream than the disk keeps up with.
        if (this.unwrittenBytes > MAX_UNWRITTEN_BYTES) await this.drained();
      }
      clearTimeout(idle);
      await this.drained();
      if (this.size !== null && this.received !== this.size) {
        throw fail(
          `upstream ${target.upstream} sent fewer bytes than announced for ${target.repository}@${digest.text}`,
        );
      }
      const actual = hash.digest('hex');
      if (actual !== digest.hex) {
        throw fail(
          `upstream ${target.upstream} sent a blob for ${target.repository}@${digest.text} whose digest is ${digest.algorithm}:${actual}; it was refused and not stored`,
        );
      }
      // Verified: readers finish now; making the blob durable and visible follows.
      this.verified = true;
      this.events.emit('change');
      await this.handle.sync();
      await this.options.commit(this.options.file, this.onDisk);
      this.state = 'stored';
      this.events.emit('change');
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      clearTimeout(idle);
      await this.drained().catch(() => undefined);
      this.state = 'failed';
      this.events.emit('change');
      this.options.logger.warn(
        { err: this.error, digest: digest.text, upstream: target.upstream },
        'mirror: blob download failed',
      );
      await rm(this.options.file, { force: true });
      throw this.error;
    } finally {
      this.ring.length = 0;
      this.ringBytes = 0;
      await this.closeIfIdle();
    }
  }

  private async closeIfIdle(): Promise<void> {
    if (this.closed || this.readers > 0 || this.state === 'running') return;
    this.closed = true;
    await this.handle.close();
  }
}

/** `buffers` without their first `written` bytes. */
function remainder(buffers: Buffer[], written: number): Buffer[] {
  let skip = written;
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}
