import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { BlobStore } from './blob-store.js';
import type { ByteRange } from './byte-range.js';
import type { DigestAlgorithm, ParsedDigest } from './digest.js';
import { OciError } from './oci-error.js';
import type { RegistryStore, UploadSession } from './registry-store.js';
import type { Clock } from '../time/clock.js';

/**
 * Blob upload sessions (distribution spec "Pushing blobs"): the session row lives in SQLite,
 * the bytes in the upload file. One request at a time per session; a chunk must start where
 * the previous one ended (else 416); completing checks the digest before the blob appears.
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

  /** Opens a session; `algorithm` is what its bytes are hashed with while they stream in. */
  async start(repository: string, algorithm: DigestAlgorithm = 'sha256'): Promise<UploadSession> {
    const id = randomUUID();
    await this.blobs.createUpload(id, algorithm);
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
      if (range !== null && range.start !== session.size) {
        throw new OciError('BLOB_UPLOAD_INVALID', 'chunk does not start where the upload ends', {
          status: 416,
          headers: rangeHeaders(session),
          detail: { expectedStart: session.size, start: range.start },
        });
      }
      const max = range === null ? undefined : range.end - range.start + 1;
      const size = await this.blobs.append(id, session.size, body, max);
      if (max !== undefined && size - session.size !== max) {
        await this.blobs.truncateUpload(id, session.size);
        throw new OciError('BLOB_UPLOAD_INVALID', 'chunk length does not match Content-Range', {
          status: 416,
          headers: rangeHeaders(session),
        });
      }
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
      if (body !== null) {
        if (range !== null && range.start !== session.size) {
          throw new OciError('BLOB_UPLOAD_INVALID', 'chunk does not start where the upload ends', {
            status: 416,
            headers: rangeHeaders(session),
          });
        }
        await this.blobs.append(id, session.size, body);
      }
      const result = await this.blobs.commit(id, digest);
      if (!result.ok) {
        await this.drop(id);
        throw new OciError('DIGEST_INVALID', 'uploaded content does not match the digest', {
          detail: { digest: digest.text },
        });
      }
      this.store.addBlob(repository, digest.text, result.size);
      this.store.deleteSession(id);
      return { size: result.size };
    });
  }

  async cancel(repository: string, id: string): Promise<void> {
    await this.exclusive(id, async () => {
      this.get(repository, id);
      await this.drop(id);
    });
  }

  /** Removes a session and its bytes if it still exists (no repository check, no errors). */
  async discard(id: string): Promise<void> {
    if (this.busy.has(id)) return;
    await this.drop(id);
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

/** `Range` header of an upload's progress: `0-<last byte>` (`0-0` when empty, as Distribution). */
export function rangeHeaders(session: UploadSession): Record<string, string> {
  return { Range: `0-${Math.max(0, session.size - 1)}` };
}
