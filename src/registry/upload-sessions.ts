import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobStore } from './blob-store.js';
import type { ByteRange } from './byte-range.js';
import type { ParsedDigest } from './digest.js';
import { OciError } from './oci-error.js';
import type { RegistryStore, UploadSession } from './registry-store.js';
import type { Clock } from '../../common/time/clock.js';

/**
 * Blob uploads (distribution spec "Pushing blobs"). A session (POST, then PATCHes, then PUT)
 * has its row in SQLite and its bytes in the upload file; one request at a time per session;
 * a chunk, the PUT's last one included, must start where the previous one ended and be as
 * long as its `Content-Range` says (else 416). A monolithic upload (POST `?digest=`) is one
 * request with nothing to resume, so it has an upload file but no row. Completing checks the
 * digest before the blob appears.
 */
export class UploadSessions {
  private readonly store: RegistryStore;
  private readonly blobs: BlobStore;
  private readonly clock: Clock;
  private readonly ttlSeconds: number;
  private readonly logger: Logger;
  private readonly busy = new Set<string>();

  constructor(options: {
    store: RegistryStore;
    blobs: BlobStore;
    clock: Clock;
    ttlSeconds: number;
    logger: Logger;
  }) {
    if (!(options.ttlSeconds > 0)) throw new Error('upload session TTL must be positive');
    this.store = options.store;
    this.blobs = options.blobs;
    this.clock = options.clock;
    this.ttlSeconds = options.ttlSeconds;
    this.logger = options.logger;
  }

  /**
   * Opens a session. Its bytes are hashed with sha256 while they stream in; a PUT naming
   * another algorithm re-reads the file.
   */
  async start(repository: string): Promise<UploadSession> {
    const id = randomUUID();
    await this.blobs.createUpload(id);
    return this.store.createSession(id, repository);
  }

  /** The live session `id` of `repository`, or BLOB_UPLOAD_UNKNOWN. */
  get(repository: string, id: string): UploadSession {
    const session = this.store.getSession(id);
    if (session?.repository !== repository || this.isExpired(session)) {
      throw new OciError('BLOB_UPLOAD_UNKNOWN', 'upload session unknown or expired', {
        detail: { session: id },
      });
    }
    return session;
  }

  /** Appends a chunk; `range` (from Content-Range) must start at the current size. */
  async append(
    repository: string,
    id: string,
    body: Readable,
    range: ByteRange | null,
  ): Promise<UploadSession> {
    return this.exclusive(id, async () => {
      const session = this.get(repository, id);
      const size = await this.appendChunk(session, body, range);
      this.store.updateSessionSize(id, size);
      return { ...session, size, updatedAt: this.clock.now() };
    });
  }

  /**
   * Appends an optional last chunk, checks `digest`, moves the blob into place and links it
   * into the repository. A digest mismatch ends the session (its bytes are discarded).
   */
  async complete(
    repository: string,
    id: string,
    digest: ParsedDigest,
    body: Readable | null,
    range: ByteRange | null,
  ): Promise<{ size: number }> {
    return this.exclusive(id, async () => {
      const session = this.get(repository, id);
      if (body !== null) await this.appendChunk(session, body, range);
      const result = await this.blobs.commit(id, digest, (size) => {
        this.store.addBlob(repository, digest.text, size);
      });
      if (!result.ok) {
        await this.drop(id);
        throw digestMismatch(digest);
      }
      this.store.deleteSession(id);
      return { size: result.size };
    });
  }

  /**
   * A monolithic upload: the whole blob in one request, checked against `digest` and linked
   * into `repository`. Its upload file is held busy while it fills, so a sweep leaves it
   * alone, and removed on any failure; no session row is ever written for it.
   */
  async uploadWhole(
    repository: string,
    digest: ParsedDigest,
    body: Readable | null,
  ): Promise<{ size: number }> {
    const id = randomUUID();
    this.busy.add(id);
    try {
      await this.blobs.createUpload(id, digest.algorithm);
      try {
        if (body !== null) await this.blobs.append(id, 0, body);
        const result = await this.blobs.commit(id, digest, (size) => {
          this.store.addBlob(repository, digest.text, size);
        });
        if (!result.ok) throw digestMismatch(digest);
        return { size: result.size };
      } catch (err) {
        await this.blobs.removeUpload(id);
        throw err;
      }
    } finally {
      this.busy.delete(id);
    }
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.exclusive(id, async () => {
      this.get(repository, id);
      await this.drop(id);
    });
  }

  /**
   * Brings every session's file back in line with its row, once at start before any request.
   * A crash (kill -9) mid-chunk leaves bytes in the file past the recorded size: they are cut
   * off, so a client resuming from the offset it is told (GET, `Range`) ends with the right
   * digest. A file shorter than its row (its tail never reached the disk) moves the row back
   * to what is there; a session whose file is gone is dropped (BLOB_UPLOAD_UNKNOWN, start
   * again). Returns how many sessions changed.
   */
  async recover(): Promise<number> {
    let changed = 0;
    for (const session of this.store.sessions()) {
      const size = await this.blobs.uploadSize(session.id);
      if (size === session.size) continue;
      changed += 1;
      if (size === null) {
        this.store.deleteSession(session.id);
      } else if (size > session.size) {
        await this.blobs.truncateUpload(session.id, session.size);
      } else {
        this.store.updateSessionSize(session.id, size);
      }
      this.logger.info(
        { session: session.id, recorded: session.size, onDisk: size },
        'registry: upload file brought back to its recorded size after a crash',
      );
    }
    return changed;
  }

  /**
   * Removes sessions idle longer than the TTL and upload files no session owns (left by a
   * crash between creating the file and recording the session). Returns how many went.
   */
  async sweep(): Promise<number> {
    let removed = 0;
    const cutoff = new Date(this.clock.now().getTime() - this.ttlSeconds * 1000);
    for (const s of this.store.expiredSessions(cutoff)) {
      if (this.busy.has(s.id)) continue;
      await this.drop(s.id);
      removed += 1;
    }
    const live = this.store.sessionIds();
    for (const file of await this.blobs.uploadFiles()) {
      if (live.has(file) || this.busy.has(file)) continue;
      await this.blobs.removeUpload(file);
      removed += 1;
    }
    if (removed > 0) this.logger.info({ removed }, 'registry: removed stale uploads');
    return removed;
  }

  /**
   * Appends one chunk to `session` and returns the new size. With a `Content-Range` the chunk
   * must start at the session's size and hold exactly the range's bytes; a chunk that does
   * not is cut off again and answered 416, leaving the session as it was.
   */
  private async appendChunk(
    session: UploadSession,
    body: Readable,
    range: ByteRange | null,
  ): Promise<number> {
    if (range !== null && range.start !== session.size) {
      throw new OciError('BLOB_UPLOAD_INVALID', 'chunk does not start where the upload ends', {
        status: 416,
        headers: rangeHeaders(session),
        detail: { expectedStart: session.size, start: range.start },
      });
    }
    const max = range === null ? undefined : range.end - range.start + 1;
    const mismatch = () =>
      new OciError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
        status: 416,
        headers: rangeHeaders(session),
        detail: { expectedLength: max },
      });
    let size: number;
    try {
      size = await this.blobs.append(session.id, session.size, body, max);
    } catch (err) {
      // The blob store stops a chunk at its first byte past the range (and cuts it back).
      if (err instanceof OciError && err.status === 416) throw mismatch();
      throw err;
    }
    if (max !== undefined && size - session.size !== max) {
      await this.blobs.truncateUpload(session.id, session.size);
      throw mismatch();
    }
    return size;
  }

  private isExpired(session: UploadSession): boolean {
    return this.clock.now().getTime() - session.updatedAt.getTime() > this.ttlSeconds * 1000;
  }

  private async drop(id: string): Promise<void> {
    this.store.deleteSession(id);
    await this.blobs.removeUpload(id);
  }

  private async exclusive<T>(id: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(id)) {
      throw new OciError('BLOB_UPLOAD_INVALID', 'another request is using this upload session', {
        status: 409,
      });
    }
    this.busy.add(id);
    try {
      return await fn();
    } finally {
      this.busy.delete(id);
    }
  }
}

function digestMismatch(digest: ParsedDigest): OciError {
  return new OciError('DIGEST_INVALID', 'uploaded content does not match the digest', {
    detail: { digest: digest.text },
  });
}

/** `Range` header of an upload's progress: `0-<last byte>` (`0-0` when empty, as Distribution). */
export function rangeHeaders(session: UploadSession): Record<string, string> {
  return { Range: `0-${Math.max(0, session.size - 1)}` };
}
