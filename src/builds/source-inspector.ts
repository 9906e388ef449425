import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { createGunzip, type Gunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import type { SourceCompression } from './build.js';
import { TarInspector } from './tar-inspector.js';
import { maxTarStreamBytes, type ArchiveLimits } from '../../common/archive/archive-limits.js';
import { AppError, isAppError } from '../errors/app-error.js';

/** Limits on the compressed upload plus those of the tar inside. */
export interface SourceLimits extends ArchiveLimits {
  maxSourceBytes: number;
}

/** What the inspector learnt about a complete, valid upload. */
export interface SourceSummary {
  sizeBytes: number;
  sha256: string;
  compression: SourceCompression;
  entries: number;
  unpackedBytes: number;
}

const GZIP_MAGIC = [0x1f, 0x8b];
/**
 * Output chunk of gunzip. Each chunk costs a callback into JS and a tar-walker call; zlib's
 * 16 KiB default made those a large share of a gzip upload's time.
 */
const GUNZIP_CHUNK_BYTES = 256 * 1024;
const ZSTD_MAGIC = [0x28, 0xb5, 0x2f, 0xfd];

/**
 * A pass-through stream over the uploaded bytes: it hashes them, counts them against the size
 * limit, detects the compression by magic number (gzip 1f8b, zstd 28b52ffd, else plain tar),
 * decompresses on the fly and walks the tar headers with {@link TarInspector}. Bytes flow on
 * unchanged (to the file on disk); the first violation fails the stream with an AppError.
 * Back-pressure from gunzip holds the upload, so memory stays bounded.
 */
export class SourceInspector extends Transform {
  private readonly hash: Hash = createHash('sha256');
  private readonly tar: TarInspector;
  private size = 0;
  private decompressed = 0;
  private readonly maxDecompressed: number;
  private head: Buffer = Buffer.alloc(0);
  private compression: SourceCompression | null = null;
  private gunzip: Gunzip | null = null;
  private zstd: Decompress | null = null;
  private failure: Error | null = null;
  private waiting: (() => void) | null = null;
  private summaryValue: SourceSummary | null = null;

  /** `highWaterMark`: bytes buffered on each side of the stream (Node's default when omitted). */
  constructor(
    private readonly limits: SourceLimits,
    private readonly highWaterMark?: number,
  ) {
    super(highWaterMark === undefined ? {} : { highWaterMark });
    this.tar = new TarInspector(limits);
    this.maxDecompressed = maxTarStreamBytes(limits);
  }

  /** Set once the stream finished successfully. */
  get summary(): SourceSummary {
    if (this.summaryValue === null) throw new Error('source inspection has not finished');
    return this.summaryValue;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, callback: TransformCallback): void {
    try {
      this.size += chunk.length;
      if (this.size > this.limits.maxSourceBytes) {
        throw new AppError('SOURCE_TOO_LARGE', undefined, {
          details: { limit: this.limits.maxSourceBytes },
        });
      }
      this.hash.update(chunk);
      if (this.compression === null) {
        this.head = Buffer.concat([this.head, chunk]);
        if (this.head.length < ZSTD_MAGIC.length) {
          callback(null, chunk);
          return;
        }
        const start = this.head;
        this.head = Buffer.alloc(0);
        this.detect(start);
        this.feed(start, () => {
          callback(this.failure, chunk);
        });
        return;
      }
      this.feed(chunk, () => {
        callback(this.failure, chunk);
      });
    } catch (err) {
      callback(toAppError(err));
    }
  }

  override _flush(callback: TransformCallback): void {
    const finish = () => {
      try {
        if (this.failure !== null) throw this.failure;
        const tar = this.tar.end();
        this.summaryValue = {
          sizeBytes: this.size,
          sha256: this.hash.digest('hex'),
          compression: this.compression ?? 'none',
          entries: tar.entries,
          unpackedBytes: tar.unpackedBytes,
        };
        callback();
      } catch (err) {
        callback(toAppError(err));
      }
    };
    try {
      if (this.compression === null) {
        if (this.head.length === 0)
          throw new AppError('SOURCE_NOT_ARCHIVE', 'The source is empty.');
        const start = this.head;
        this.head = Buffer.alloc(0);
        this.detect(start);
        this.feed(start, () => {
          this.endDecompression(finish);
        });
        return;
      }
      this.endDecompression(finish);
    } catch (err) {
      callback(toAppError(err));
    }
  }

  override _destroy(err: Error | null, callback: (error: Error | null) => void): void {
    this.gunzip?.destroy();
    callback(err);
  }

  private detect(start: Buffer): void {
    if (startsWith(start, GZIP_MAGIC)) {
      this.compression = 'gzip';
      const gunzip = createGunzip({
        chunkSize: GUNZIP_CHUNK_BYTES,
        ...(this.highWaterMark === undefined ? {} : { highWaterMark: this.highWaterMark }),
      });
      gunzip.on('data', (data: Buffer) => {
        this.tarBytes(data);
      });
      gunzip.on('error', (err) => {
        this.fail(corrupt(err, 'The gzip stream is corrupt.'));
      });
      this.gunzip = gunzip;
    } else if (startsWith(start, ZSTD_MAGIC)) {
      this.compression = 'zstd';
      this.zstd = new Decompress((data) => {
        this.tarBytes(data);
      });
    } else {
      this.compression = 'none';
    }
  }

  private feed(data: Buffer, done: () => void): void {
    if (this.failure !== null) {
      done();
      return;
    }
    if (this.gunzip) {
      if (this.gunzip.write(data)) done();
      else this.waitGunzip('drain', done);
      return;
    }
    if (this.zstd) {
      try {
        this.zstd.push(data);
      } catch (err) {
        this.fail(corrupt(err, 'The zstd stream is corrupt.'));
      }
      done();
      return;
    }
    this.tarBytes(data);
    done();
  }

  private endDecompression(done: () => void): void {
    if (this.failure !== null) {
      done();
      return;
    }
    if (this.gunzip) {
      this.waitGunzip('end', done);
      this.gunzip.end();
      // gunzip emits 'end' only once its output is consumed; it flows into tarBytes already.
      return;
    }
    if (this.zstd) {
      try {
        this.zstd.push(new Uint8Array(0), true);
      } catch (err) {
        this.fail(corrupt(err, 'The zstd stream is truncated or corrupt.'));
      }
    }
    done();
  }

  /** Waits for `event` on gunzip, or for a failure, whichever comes first. */
  private waitGunzip(event: 'drain' | 'end', done: () => void): void {
    const gunzip = this.gunzip;
    if (!gunzip) {
      done();
      return;
    }
    this.waiting = done;
    gunzip.once(event, () => {
      this.release();
    });
  }

  private release(): void {
    const waiting = this.waiting;
    this.waiting = null;
    waiting?.();
  }

  private tarBytes(data: Uint8Array): void {
    if (this.failure !== null) return;
    try {
      this.decompressed += data.byteLength;
      if (this.decompressed > this.maxDecompressed) {
        throw new AppError('SOURCE_UNPACKED_TOO_LARGE', undefined, {
          details: { limit: this.limits.maxUnpackedBytes },
        });
      }
      this.tar.push(data);
    } catch (err) {
      this.fail(toAppError(err));
    }
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    if (this.gunzip) {
      // Stop decompressing: nothing more is needed once the upload is rejected.
      this.gunzip.removeAllListeners('data');
      this.gunzip.pause();
    }
    this.release();
  }
}

function startsWith(buf: Buffer, magic: number[]): boolean {
  return magic.every((b, i) => buf[i] === b);
}

/** A decompressor's error as SOURCE_CORRUPT (AppErrors raised from its callbacks pass as they are). */
function corrupt(err: unknown, message: string): AppError {
  return isAppError(err) ? err : new AppError('SOURCE_CORRUPT', message, { cause: err });
}

function toAppError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new AppError('INTERNAL', 'source inspection failed', { cause: err });
}
