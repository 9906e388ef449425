import { EventEmitter } from 'node:events';
import { open, rm, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { UpstreamBlob } from './upstream-client.js';
import { UpstreamError } from './upstream-error.js';
import { newHash, type ParsedDigest } from '../digest.js';

/** Bytes one reader takes from the file per read. */
const READ_CHUNK_BYTES = 1024 * 1024;

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

/**
 * One blob being downloaded from an upstream into a temporary file while it is hashed, and
 * read by any number of clients at once as it grows (a reader waits at the end of the file
 * for more). The download does not depend on any client: a slow or vanished client neither
 * slows nor stops it, so the blob is fetched once however many ask. Until the digest is
 * verified a reader is given every byte but the last, so no client ever receives a whole blob
 * that turns out wrong; on a mismatch (or a broken download) every reader is destroyed with
 * the error — the client's response is cut short — and the file is removed, never stored.
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
  private onDisk = 0;
  private state: 'running' | 'stored' | 'failed' = 'running';
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

  /** Bytes on disk so far. */
  get written(): number {
    return this.onDisk;
  }

  /**
   * A stream of the blob from its first byte, following the download as it goes; null once
   * the download settled and its file was closed (the blob is then stored, or refused).
   */
  reader(): Readable | null {
    if (this.closed) return null;
    this.readers += 1;
    let position = 0;
    let pumping = false;
    const stream: Readable = new Readable({
      highWaterMark: READ_CHUNK_BYTES,
      read: () => {
        if (pumping) return;
        pumping = true;
        this.next(position)
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

  /** The next bytes after `position` once there are any, null at the verified end. */
  private async next(position: number): Promise<Buffer | null> {
    for (;;) {
      // Hold back the last byte until the digest is verified.
      const limit = this.state === 'stored' ? this.onDisk : Math.max(0, this.onDisk - 1);
      if (position < limit) {
        const length = Math.min(limit - position, READ_CHUNK_BYTES);
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await this.handle.read(buffer, 0, length, position);
        return buffer.subarray(0, bytesRead);
      }
      if (this.state === 'failed') throw this.error ?? new Error('download failed');
      if (this.state === 'stored') return null;
      await new Promise<void>((resolve) => {
        this.events.once('change', resolve);
      });
    }
  }

  private async run(): Promise<void> {
    const { upstream, digest, target } = this.options;
    const hash = newHash(digest.algorithm);
    let idle: NodeJS.Timeout | undefined;
    const armIdle = () => {
      clearTimeout(idle);
      idle = setTimeout(() => {
        upstream.abort(new Error('idle'));
      }, this.options.idleTimeoutMs);
    };
    const fail = (message: string, cause?: unknown) =>
      new UpstreamError('invalid', { ...target, reference: digest.text }, message, { cause });
    try {
      armIdle();
      const reader = upstream.body.getReader();
      for (;;) {
        let result: Awaited<ReturnType<typeof reader.read>>;
        try {
          result = await reader.read();
        } catch (err) {
          throw new UpstreamError(
            'unreachable',
            { ...target, reference: digest.text },
            `upstream ${target.upstream} broke off the download of ${target.repository}@${digest.text}`,
            { cause: err },
          );
        }
        if (result.done) break;
        const chunk = result.value;
        armIdle();
        if (this.size !== null && this.onDisk + chunk.length > this.size) {
          await reader.cancel();
          throw fail(
            `upstream ${target.upstream} sent more bytes than announced for ${target.repository}@${digest.text}`,
          );
        }
        hash.update(chunk);
        let offset = 0;
        while (offset < chunk.length) {
          const { bytesWritten } = await this.handle.write(
            chunk,
            offset,
            chunk.length - offset,
            this.onDisk,
          );
          offset += bytesWritten;
          this.onDisk += bytesWritten;
        }
        this.events.emit('change');
      }
      clearTimeout(idle);
      if (this.size !== null && this.onDisk !== this.size) {
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
      await this.handle.sync();
      await this.options.commit(this.options.file, this.onDisk);
      this.state = 'stored';
      this.events.emit('change');
    } catch (err) {
      clearTimeout(idle);
      this.state = 'failed';
      this.error = err instanceof Error ? err : new Error(String(err));
      this.events.emit('change');
      this.options.logger.warn(
        { err: this.error, digest: digest.text, upstream: target.upstream },
        'mirror: blob download failed',
      );
      await rm(this.options.file, { force: true });
      throw this.error;
    } finally {
      await this.closeIfIdle();
    }
  }

  private async closeIfIdle(): Promise<void> {
    if (this.closed || this.readers > 0 || this.state === 'running') return;
    this.closed = true;
    await this.handle.close();
  }
}
