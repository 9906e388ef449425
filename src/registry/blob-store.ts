import type { Hash } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BufferPool } from './buffer-pool.js';
import { newHash, type DigestAlgorithm, type ParsedDigest } from './digest.js';
import { UploadFileWriter } from './upload-file-writer.js';
import { syncPath } from '../storage/sync-path.js';

/**
 * Buffer between the socket and the upload file. With Node's 16 KiB default every socket
 * chunk would pause the request until the disk write finished; a few MiB lets receiving,
 * hashing and writing overlap while still bounding memory per upload.
 */
const STREAM_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * Size of each of the two buffers `send` reads a blob into. They are reused chunk after chunk
 * and, through a pool, download after download: a fresh buffer per chunk (what an
 * fs.ReadStream does) or per download costs page faults and garbage collections, a large
 * share of a pull's CPU.
 */
const SEND_CHUNK_BYTES = 2 * 1024 * 1024;

/**
 * Send buffers kept while idle: two per download for six concurrent downloads (what skopeo,
 * containerd and Buildah run by default), 24 MiB.
 */
const SEND_BUFFERS_KEPT = 12;

interface RunningHash {
  algorithm: DigestAlgorithm;
  /** Bytes hashed so far; valid only while it equals the upload file's size. */
  offset: number;
  hash: Hash;
}

/**
 * Content-addressed blob files (docs/contracts.md#registry): `<root>/blobs/<alg>/<ab>/<hex>`,
 * uploads in `<root>/uploads/<id>`. An upload becomes a blob only by `rename` after its bytes were
 * fsynced and its digest checked, so a crash never leaves a partial or wrong blob visible. An
 * upload is hashed while it streams in (sha256, or the algorithm of a monolithic upload's digest);
 * another algorithm at the end, or a hash lost to a restart, means re-reading the file.
 */
export class BlobStore {
  private readonly blobsDir: string;
  private readonly uploadsDir: string;
  private readonly hashes = new Map<string, RunningHash>();
  /** Open read streams per blob digest. */
  private readonly readers = new Map<string, number>();
  /** Commits in progress per digest (between the rename and the rows). */
  private readonly arriving = new Map<string, number>();
  /** File removals in progress per digest. */
  private readonly removing = new Map<string, Promise<void>>();
  private readonly sendBuffers = new BufferPool({
    bufferBytes: SEND_CHUNK_BYTES,
    maxFree: SEND_BUFFERS_KEPT,
  });

  constructor(root: string) {
    this.blobsDir = path.join(root, 'blobs');
    this.uploadsDir = path.join(root, 'uploads');
  }

  async init(): Promise<void> {
    await mkdir(this.blobsDir, { recursive: true });
    await mkdir(this.uploadsDir, { recursive: true });
  }

  blobPath(digest: ParsedDigest): string {
    return path.join(this.blobsDir, digest.algorithm, digest.hex.slice(0, 2), digest.hex);
  }

  uploadPath(id: string): string {
    return path.join(this.uploadsDir, id);
  }

  /** Creates the (empty) file of a new upload session, hashed with `algorithm` as it grows. */
  async createUpload(id: string, algorithm: DigestAlgorithm = 'sha256'): Promise<void> {
    const handle = await open(this.uploadPath(id), 'wx', 0o600);
    await handle.close();
    this.hashes.set(id, { algorithm, offset: 0, hash: newHash(algorithm) });
  }

  /**
   * Appends `body` to the upload that currently holds `offset` bytes, with back-pressure, and
   * returns its new size. On any failure the file is cut back to `offset` so a retried chunk
   * starts from a known state.
   */
  async append(id: string, offset: number, body: Readable, maxBytes?: number): Promise<number> {
    const file = this.uploadPath(id);
    let running = this.hashes.get(id);
    if (running?.offset !== offset) running = undefined;
    this.hashes.delete(id);
    const sink = new UploadFileWriter({
      file,
      hash: running?.hash,
      maxBytes,
      highWaterMark: STREAM_BUFFER_BYTES,
    });
    try {
      await pipeline(body, sink);
    } catch (err) {
      await truncate(file, offset).catch(() => undefined);
      throw err;
    }
    const written = sink.written;
    if (running) this.hashes.set(id, { ...running, offset: offset + written });
    return offset + written;
  }

  /**
   * Checks the upload against `digest`, makes it durable, renames it into place and runs
   * `record` (which writes the blob's rows) while the blob counts as arriving, so garbage
   * collection cannot remove the file between the rename and the rows. Returns false (and
   * leaves the upload alone) when the digest does not match.
   */
  async commit(
    id: string,
    digest: ParsedDigest,
    record: (size: number) => void,
  ): Promise<{ ok: boolean; size: number }> {
    const file = this.uploadPath(id);
    const { size } = await stat(file);
    const running = this.hashes.get(id);
    let actual: string;
    if (running?.algorithm === digest.algorithm && running.offset === size) {
      actual = running.hash.copy().digest('hex');
    } else {
      actual = await hashFile(file, digest.algorithm);
    }
    if (actual !== digest.hex) return { ok: false, size };
    await syncPath(file);
    await this.arrive(digest, async () => {
      const target = this.blobPath(digest);
      await mkdir(path.dirname(target), { recursive: true });
      await rename(file, target);
      await syncPath(path.dirname(target));
      record(size);
    });
    this.hashes.delete(id);
    return { ok: true, size };
  }

  /**
   * Runs `arrival`, which puts the blob's file in place and records it, with the blob marked
   * as arriving: it first waits for a garbage-collection removal of the same digest to finish,
   * and no removal starts until it is done.
   */
  async arrive<T>(digest: ParsedDigest, arrival: () => Promise<T>): Promise<T> {
    this.arriving.set(digest.text, (this.arriving.get(digest.text) ?? 0) + 1);
    try {
      await this.removing.get(digest.text);
      return await arrival();
    } finally {
      const left = (this.arriving.get(digest.text) ?? 1) - 1;
      if (left > 0) this.arriving.set(digest.text, left);
      else this.arriving.delete(digest.text);
    }
  }

  /** Cuts an upload back to `size` bytes (a rejected chunk). */
  async truncateUpload(id: string, size: number): Promise<void> {
    this.hashes.delete(id);
    await truncate(this.uploadPath(id), size);
  }

  /** Bytes in the upload file of `id`, or null when there is none. */
  async uploadSize(id: string): Promise<number | null> {
    try {
      return (await stat(this.uploadPath(id))).size;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
  }

  async removeUpload(id: string): Promise<void> {
    this.hashes.delete(id);
    await rm(this.uploadPath(id), { force: true });
  }

  /** Names of upload files on disk (for removing orphans after a crash). */
  async uploadFiles(): Promise<string[]> {
    return readdir(this.uploadsDir);
  }

  /**
   * A stream of a blob's bytes, `end` inclusive (as fs ranges are). The blob counts as being
   * read until the stream closes, and garbage collection leaves it alone meanwhile.
   */
  read(digest: ParsedDigest, range?: { start: number; end: number }): ReadStream {
    const stream = createReadStream(this.blobPath(digest), {
      ...(range ?? {}),
      highWaterMark: 1024 * 1024,
    });
    this.readers.set(digest.text, (this.readers.get(digest.text) ?? 0) + 1);
    stream.once('close', () => {
      const left = (this.readers.get(digest.text) ?? 1) - 1;
      if (left > 0) this.readers.set(digest.text, left);
      else this.readers.delete(digest.text);
    });
    return stream;
  }

  /**
   * Hands a blob's bytes (`end` inclusive) to `write`, one chunk at a time, reading the next
   * chunk while the last is written; a chunk's memory is reused once its `write` resolves, so
   * `write` must be done with it by then (a socket write callback is). The blob counts as being
   * read from this call until it settles. Rejects when `write` does, or when the file ends
   * before the range does.
   */
  async send(
    digest: ParsedDigest,
    range: { start: number; end: number },
    write: (chunk: Buffer) => Promise<void>,
  ): Promise<void> {
    this.readers.set(digest.text, (this.readers.get(digest.text) ?? 0) + 1);
    try {
      const handle = await open(this.blobPath(digest), 'r');
      let reading: Promise<number> = Promise.resolve(0);
      let current = this.sendBuffers.acquire();
      let spare = this.sendBuffers.acquire();
      let complete = false;
      try {
        const length = range.end - range.start + 1;
        const readAt = async (buffer: Buffer, done: number): Promise<number> => {
          if (done >= length) return 0;
          const want = Math.min(buffer.length, length - done);
          const { bytesRead } = await handle.read(buffer, 0, want, range.start + done);
          if (bytesRead === 0) throw new Error(`blob ${digest.text} ends before its range`);
          return bytesRead;
        };
        let done = 0;
        reading = readAt(current, 0);
        for (;;) {
          const n = await reading;
          if (n === 0) break;
          done += n;
          reading = readAt(spare, done);
          // Awaited on the next turn; until then a failure must not count as unhandled.
          reading.catch(() => undefined);
          await write(current.subarray(0, n));
          [current, spare] = [spare, current];
        }
        complete = true;
      } finally {
        // Never close the file under a read still in flight.
        await reading.catch(() => 0);
        await handle.close();
        // After a failed write the socket may still hold the chunk: only a download that
        // went through hands its buffers back.
        if (complete) {
          this.sendBuffers.release(current);
          this.sendBuffers.release(spare);
        }
      }
    } finally {
      const left = (this.readers.get(digest.text) ?? 1) - 1;
      if (left > 0) this.readers.set(digest.text, left);
      else this.readers.delete(digest.text);
    }
  }

  /** True while the blob is being read, or is arriving (an upload or download committing). */
  isBusy(digest: ParsedDigest): boolean {
    return this.readers.has(digest.text) || this.arriving.has(digest.text);
  }

  /**
   * Removes a blob's file (garbage collection, once its rows are gone). Call it in the same
   * tick as the busy check and the row deletion: the removal is registered at once, so an
   * arrival of the same digest waits for it.
   */
  remove(digest: ParsedDigest): Promise<void> {
    const done = rm(this.blobPath(digest), { force: true }).finally(() => {
      this.removing.delete(digest.text);
    });
    this.removing.set(digest.text, done);
    return done;
  }
}

async function hashFile(file: string, algorithm: ParsedDigest['algorithm']): Promise<string> {
  const hash = newHash(algorithm);
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
