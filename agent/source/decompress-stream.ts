import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { Decompress } from 'fzstd';
import { ArchiveError } from '../../common/archive/archive-error.js';
import type { BuildJob } from '../../common/protocol/build-job.js';

/** How the source archive is compressed, as build.json says. */
export type SourceCompression = BuildJob['source']['compression'];

/**
 * Decompresses the source archive stream. zstd goes through the pure-JS `fzstd` (the Node 20
 * typings have no zstd, and the agent must typecheck under them). A truncated or corrupt
 * stream fails with SOURCE_CORRUPT; more than `maxOutputBytes` of output fails with
 * SOURCE_UNPACKED_TOO_LARGE, so a decompression bomb stops early, not at the tar limits.
 * Errors of every stage surface on the returned stream.
 */
export function decompressSource(
  input: Readable,
  compression: SourceCompression,
  maxOutputBytes: number,
): Readable {
  const stages: Transform[] = [];
  // 128 KiB output chunks (zlib's default is 16 KiB): fewer, larger writes per file.
  if (compression === 'gzip') stages.push(createGunzip({ chunkSize: 128 * 1024 }));
  if (compression === 'zstd') stages.push(new ZstdTransform());
  const limit = new OutputLimit(maxOutputBytes);
  stages.push(limit);
  const all: Readable[] = [input, ...stages];
  let failed = false;
  const fail = (err: Error): void => {
    if (failed) return;
    failed = true;
    const mapped =
      err instanceof ArchiveError
        ? err
        : new ArchiveError('SOURCE_CORRUPT', `${compression}: ${err.message}`, { cause: err });
    for (const s of all) if (s !== limit) s.destroy();
    limit.destroy(mapped);
  };
  let prev: Readable = input;
  for (const stage of stages) {
    prev.pipe(stage);
    if (prev !== limit) prev.on('error', fail);
    prev = stage;
  }
  return limit;
}

class OutputLimit extends Transform {
  private total = 0;
  constructor(private readonly max: number) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.total += chunk.length;
    if (this.total > this.max) {
      cb(
        new ArchiveError(
          'SOURCE_UNPACKED_TOO_LARGE',
          `the decompressed source exceeds ${this.max} bytes`,
        ),
      );
      return;
    }
    cb(null, chunk);
  }
}

class ZstdTransform extends Transform {
  private readonly zstd: Decompress;
  private out: Buffer[] = [];
  private ended = false;

  constructor() {
    super();
    this.zstd = new Decompress((data, final) => {
      if (data.length > 0) this.out.push(Buffer.from(data));
      if (final === true) this.ended = true;
    });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.zstd.push(chunk);
    } catch (err) {
      cb(new ArchiveError('SOURCE_CORRUPT', `zstd: ${(err as Error).message}`, { cause: err }));
      return;
    }
    this.drainOut();
    cb();
  }

  override _flush(cb: TransformCallback): void {
    try {
      this.zstd.push(new Uint8Array(0), true);
    } catch (err) {
      cb(new ArchiveError('SOURCE_CORRUPT', `zstd: ${(err as Error).message}`, { cause: err }));
      return;
    }
    this.drainOut();
    if (!this.ended) {
      cb(new ArchiveError('SOURCE_CORRUPT', 'zstd: the stream is truncated'));
      return;
    }
    cb();
  }

  private drainOut(): void {
    for (const b of this.out) this.push(b);
    this.out = [];
  }
}
