import type { Database, Statement } from 'better-sqlite3';
import type { Clock } from '../../common/time/clock.js';
import { BASE_IMAGE_NAMESPACE, CACHE_NAMESPACE, MIRROR_NAMESPACE } from '../auth/scopes.js';

/** The classes of repositories storage is reported by: every tenant counts as `tenant`. */
export type NamespaceClass = 'library' | 'mirror' | 'cache' | 'tenant';

/** What one namespace class holds; a blob linked into several classes counts in each. */
export interface NamespaceTotals {
  namespace: NamespaceClass;
  blobs: number;
  blobBytes: number;
  manifests: number;
  manifestBytes: number;
}

/** A stored manifest as eviction and garbage collection see it. */
export interface ManifestEntry {
  repository: string;
  digest: string;
  mediaType: string;
  size: number;
  /** When it was last served through the mirror, or stored. */
  usedAt: Date;
  content: Buffer;
}

/** A blob every link of which is in the mirror namespace (what the mirror's limit counts). */
export interface MirrorOnlyBlob {
  digest: string;
  size: number;
  touchedAt: Date;
}

/** The SQL class of the repository aliased `r` (see NamespaceClass). */
const NAMESPACE_OF_R = `CASE substr(r.name, 1, instr(r.name, '/') - 1)
  WHEN '${BASE_IMAGE_NAMESPACE}' THEN 'library' WHEN '${MIRROR_NAMESPACE}' THEN 'mirror'
  WHEN '${CACHE_NAMESPACE}' THEN 'cache' ELSE 'tenant' END`;

/** True in SQL when the repository aliased `r` is in the mirror namespace. */
const R_IS_MIRROR = `substr(r.name, 1, ${MIRROR_NAMESPACE.length + 1}) = '${MIRROR_NAMESPACE}/'`;

/** A stored manifest (manifests, tags and referrers live in SQLite: docs/contracts.md#registry). */
export interface StoredManifest {
  digest: string;
  mediaType: string;
  artifactType: string | null;
  subjectDigest: string | null;
  annotations: Record<string, string> | null;
  size: number;
  content: Buffer;
}

/** A blob upload session (distribution spec "Pushing blobs"). */
export interface UploadSession {
  id: string;
  repository: string;
  /** Bytes received so far. */
  size: number;
  createdAt: Date;
  updatedAt: Date;
}

interface ManifestRow {
  digest: string;
  media_type: string;
  artifact_type: string | null;
  subject_digest: string | null;
  annotations: string | null;
  size: number;
  content: Buffer;
}

interface SessionRow {
  id: string;
  repository: string;
  size: number;
  created_at: number;
  updated_at: number;
}

function toManifest(row: ManifestRow): StoredManifest {
  return {
    digest: row.digest,
    mediaType: row.media_type,
    artifactType: row.artifact_type,
    subjectDigest: row.subject_digest,
    annotations:
      row.annotations === null ? null : (JSON.parse(row.annotations) as Record<string, string>),
    size: row.size,
    content: row.content,
  };
}

function toSession(row: SessionRow): UploadSession {
  return {
    id: row.id,
    repository: row.repository,
    size: row.size,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
  };
}

/**
 * The registry's metadata in SQLite: repositories, blob links, manifests, tags, referrers and
 * upload sessions. Statements are prepared once; every multi-row change is one transaction.
 */
export class RegistryStore {
  private readonly db: Database;
  private readonly clock: Clock;
  private readonly s: {
    repoId: Statement<[string], { id: number }>;
    insertRepo: Statement<[string, number]>;
    insertBlob: Statement<[string, number, number, number]>;
    touchBlob: Statement<[number, string]>;
    untouchedBlob: Statement<[string, number], { found: number }>;
    untouchedBlobs: Statement<[number], { digest: string; size: number }>;
    manifestContents: Statement<[], { media_type: string; content: Buffer }>;
    removeBlobLinks: Statement<[string]>;
    removeBlob: Statement<[string]>;
    blobBytes: Statement<[], { count: number; bytes: number }>;
    linkBlob: Statement<[number, string, number]>;
    linkedBlob: Statement<[string, string], { size: number }>;
    linkedUnder: Statement<[string, string, string], { found: number }>;
    unlinkBlob: Statement<[number, string]>;
    getManifest: Statement<[string, string], ManifestRow>;
    upsertManifest: Statement<
      [
        number,
        string,
        string,
        string | null,
        string | null,
        string | null,
        number,
        Buffer,
        number,
        number,
      ]
    >;
    touchManifest: Statement<[number, string, string]>;
    manifestEntries: Statement<
      [],
      {
        repository: string;
        digest: string;
        media_type: string;
        size: number;
        used_at: number;
        content: Buffer;
      }
    >;
    evictManifest: Statement<[string, string, number]>;
    mirrorOnlyBlobs: Statement<[], { digest: string; size: number; touched_at: number }>;
    mirrorUsage: Statement<[], { bytes: number }>;
    namespaceBlobs: Statement<[], { namespace: NamespaceClass; count: number; bytes: number }>;
    namespaceManifests: Statement<[], { namespace: NamespaceClass; count: number; bytes: number }>;
    deleteManifest: Statement<[number, string]>;
    tagDigest: Statement<[string, string], { digest: string }>;
    tagResolution: Statement<[string, string], { digest: string; updated_at: number }>;
    upsertTag: Statement<[number, string, string, number]>;
    deleteTag: Statement<[number, string]>;
    listTags: Statement<[string, string, number], { name: string }>;
    referrers: Statement<[string, string], ManifestRow>;
    insertSession: Statement<[string, string, number, number]>;
    getSession: Statement<[string], SessionRow>;
    updateSession: Statement<[number, number, string]>;
    deleteSession: Statement<[string]>;
    expiredSessions: Statement<[number], SessionRow>;
    allSessionIds: Statement<[], { id: string }>;
    allSessions: Statement<[], SessionRow>;
  };

  constructor(db: Database, clock: Clock) {
    this.db = db;
    this.clock = clock;
    this.s = {
      repoId: db.prepare('SELECT id FROM registry_repositories WHERE name = ?'),
      insertRepo: db.prepare(
        'INSERT INTO registry_repositories (name, created_at) VALUES (?, ?) ON CONFLICT(name) DO NOTHING',
      ),
      insertBlob: db.prepare(
        `INSERT INTO registry_blobs (digest, size, created_at, touched_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(digest) DO UPDATE SET touched_at = excluded.touched_at`,
      ),
      touchBlob: db.prepare('UPDATE registry_blobs SET touched_at = ? WHERE digest = ?'),
      untouchedBlob: db.prepare(
        'SELECT 1 AS found FROM registry_blobs WHERE digest = ? AND touched_at < ?',
      ),
      untouchedBlobs: db.prepare(
        'SELECT digest, size FROM registry_blobs WHERE touched_at < ? ORDER BY digest',
      ),
      manifestContents: db.prepare('SELECT media_type, content FROM registry_manifests'),
      removeBlobLinks: db.prepare('DELETE FROM registry_blob_links WHERE digest = ?'),
      removeBlob: db.prepare('DELETE FROM registry_blobs WHERE digest = ?'),
      blobBytes: db.prepare(
        'SELECT COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM registry_blobs',
      ),
      linkBlob: db.prepare(
        'INSERT INTO registry_blob_links (repository_id, digest, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING',
      ),
      linkedBlob: db.prepare(
        `SELECT b.size FROM registry_blob_links l
           JOIN registry_repositories r ON r.id = l.repository_id
           JOIN registry_blobs b ON b.digest = l.digest
          WHERE r.name = ? AND l.digest = ?`,
      ),
      linkedUnder: db.prepare(
        `SELECT 1 AS found FROM registry_blob_links l
           JOIN registry_repositories r ON r.id = l.repository_id
          WHERE l.digest = ? AND substr(r.name, 1, length(?)) = ? LIMIT 1`,
      ),
      unlinkBlob: db.prepare(
        'DELETE FROM registry_blob_links WHERE repository_id = ? AND digest = ?',
      ),
      getManifest: db.prepare(
        `SELECT m.digest, m.media_type, m.artifact_type, m.subject_digest, m.annotations, m.size, m.content
           FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id
          WHERE r.name = ? AND m.digest = ?`,
      ),
      upsertManifest: db.prepare(
        `INSERT INTO registry_manifests
           (repository_id, digest, media_type, artifact_type, subject_digest, annotations, size, content, created_at, used_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(repository_id, digest) DO UPDATE
           SET media_type = excluded.media_type, used_at = excluded.used_at`,
      ),
      touchManifest: db.prepare(
        `UPDATE registry_manifests SET used_at = ?
          WHERE repository_id = (SELECT id FROM registry_repositories WHERE name = ?) AND digest = ?`,
      ),
      manifestEntries: db.prepare(
        `SELECT r.name AS repository, m.digest, m.media_type, m.size, m.used_at, m.content
           FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id`,
      ),
      evictManifest: db.prepare(
        `DELETE FROM registry_manifests
          WHERE repository_id = (SELECT id FROM registry_repositories WHERE name = ?)
            AND digest = ? AND used_at < ?`,
      ),
      mirrorOnlyBlobs: db.prepare(
        `SELECT b.digest, b.size, b.touched_at FROM registry_blobs b
          WHERE EXISTS (SELECT 1 FROM registry_blob_links l
                          JOIN registry_repositories r ON r.id = l.repository_id
                         WHERE l.digest = b.digest AND ${R_IS_MIRROR})
            AND NOT EXISTS (SELECT 1 FROM registry_blob_links l
                              JOIN registry_repositories r ON r.id = l.repository_id
                             WHERE l.digest = b.digest AND NOT ${R_IS_MIRROR})`,
      ),
      mirrorUsage: db.prepare(
        `SELECT
           (SELECT COALESCE(SUM(b.size), 0) FROM registry_blobs b
             WHERE EXISTS (SELECT 1 FROM registry_blob_links l
                             JOIN registry_repositories r ON r.id = l.repository_id
                            WHERE l.digest = b.digest AND ${R_IS_MIRROR})
               AND NOT EXISTS (SELECT 1 FROM registry_blob_links l
                                 JOIN registry_repositories r ON r.id = l.repository_id
                                WHERE l.digest = b.digest AND NOT ${R_IS_MIRROR}))
         + (SELECT COALESCE(SUM(m.size), 0) FROM registry_manifests m
              JOIN registry_repositories r ON r.id = m.repository_id WHERE ${R_IS_MIRROR})
           AS bytes`,
      ),
      namespaceBlobs: db.prepare(
        `SELECT namespace, COUNT(*) AS count, COALESCE(SUM(size), 0) AS bytes FROM (
           SELECT DISTINCT ${NAMESPACE_OF_R} AS namespace, b.digest, b.size
             FROM registry_blob_links l
             JOIN registry_repositories r ON r.id = l.repository_id
             JOIN registry_blobs b ON b.digest = l.digest)
         GROUP BY namespace`,
      ),
      namespaceManifests: db.prepare(
        `SELECT ${NAMESPACE_OF_R} AS namespace, COUNT(*) AS count, COALESCE(SUM(m.size), 0) AS bytes
           FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id
          GROUP BY namespace`,
      ),
      deleteManifest: db.prepare(
        'DELETE FROM registry_manifests WHERE repository_id = ? AND digest = ?',
      ),
      tagDigest: db.prepare(
        `SELECT t.digest FROM registry_tags t JOIN registry_repositories r ON r.id = t.repository_id
          WHERE r.name = ? AND t.name = ?`,
      ),
      tagResolution: db.prepare(
        `SELECT t.digest, t.updated_at FROM registry_tags t
           JOIN registry_repositories r ON r.id = t.repository_id
          WHERE r.name = ? AND t.name = ?`,
      ),
      upsertTag: db.prepare(
        `INSERT INTO registry_tags (repository_id, name, digest, updated_at) VALUES (?, ?, ?, ?)
         ON CONFLICT(repository_id, name) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at`,
      ),
      deleteTag: db.prepare('DELETE FROM registry_tags WHERE repository_id = ? AND name = ?'),
      listTags: db.prepare(
        `SELECT t.name FROM registry_tags t JOIN registry_repositories r ON r.id = t.repository_id
          WHERE r.name = ? AND t.name > ? ORDER BY t.name LIMIT ?`,
      ),
      referrers: db.prepare(
        `SELECT m.digest, m.media_type, m.artifact_type, m.subject_digest, m.annotations, m.size, m.content
           FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id
          WHERE r.name = ? AND m.subject_digest = ? ORDER BY m.created_at, m.digest`,
      ),
      insertSession: db.prepare(
        'INSERT INTO registry_upload_sessions (id, repository, size, created_at, updated_at) VALUES (?, ?, 0, ?, ?)',
      ),
      getSession: db.prepare('SELECT * FROM registry_upload_sessions WHERE id = ?'),
      updateSession: db.prepare(
        'UPDATE registry_upload_sessions SET size = ?, updated_at = ? WHERE id = ?',
      ),
      deleteSession: db.prepare('DELETE FROM registry_upload_sessions WHERE id = ?'),
      expiredSessions: db.prepare('SELECT * FROM registry_upload_sessions WHERE updated_at < ?'),
      allSessionIds: db.prepare('SELECT id FROM registry_upload_sessions'),
      allSessions: db.prepare('SELECT * FROM registry_upload_sessions'),
    };
  }

  /** Now in milliseconds since the epoch, the unit of every time column. */
  private now(): number {
    return this.clock.now().getTime();
  }

  private ensureRepo(name: string): number {
    this.s.insertRepo.run(name, this.now());
    const row = this.s.repoId.get(name);
    if (!row) throw new Error(`repository ${name} vanished`);
    return row.id;
  }

  repositoryExists(name: string): boolean {
    return this.s.repoId.get(name) !== undefined;
  }

  /** Records a blob that is now on disk and links it into `repository`. */
  addBlob(repository: string, digest: string, size: number): void {
    this.db.transaction(() => {
      this.s.insertBlob.run(digest, size, this.now(), this.now());
      this.s.linkBlob.run(this.ensureRepo(repository), digest, this.now());
    })();
  }

  /** Links an existing blob into `repository` (cross-repo mount). */
  linkBlob(repository: string, digest: string): void {
    this.db.transaction(() => {
      this.s.linkBlob.run(this.ensureRepo(repository), digest, this.now());
      this.s.touchBlob.run(this.now(), digest);
    })();
  }

  /**
   * Size of a blob visible in `repository`, or null. Every path that finds a blob for a client
   * (HEAD/GET, mounts, upload and manifest checks) asks here, so finding it also renews its
   * garbage-collection grace period (`touched_at`).
   */
  linkedBlobSize(repository: string, digest: string): number | null {
    const size = this.s.linkedBlob.get(repository, digest)?.size ?? null;
    if (size !== null) this.s.touchBlob.run(this.now(), digest);
    return size;
  }

  /**
   * Whether a blob is visible in `repository`, without renewing its grace period: for a look
   * that serves nothing (the mirror deciding what to prefetch), so a warm pull writes nothing.
   */
  hasLinkedBlob(repository: string, digest: string): boolean {
    return this.s.linkedBlob.get(repository, digest) !== undefined;
  }

  /** Blobs nobody has touched since `cutoff` (candidates for garbage collection). */
  untouchedBlobs(cutoff: Date): { digest: string; size: number }[] {
    return this.s.untouchedBlobs.all(cutoff.getTime());
  }

  /** Every stored manifest's media type and bytes (what garbage collection marks from). */
  manifestContents(): { mediaType: string; content: Buffer }[] {
    return this.s.manifestContents
      .all()
      .map((r) => ({ mediaType: r.media_type, content: r.content }));
  }

  /**
   * Forgets a blob in every repository, unless it was touched since `cutoff` (checked in the
   * same transaction, so a blob found by a client a moment ago is kept). True when removed.
   */
  removeBlobIfUntouched(digest: string, cutoff: Date): boolean {
    return this.db.transaction(() => {
      const row = this.s.untouchedBlob.get(digest, cutoff.getTime());
      if (row === undefined) return false;
      this.s.removeBlobLinks.run(digest);
      this.s.removeBlob.run(digest);
      return true;
    })();
  }

  /** How many blobs are stored and their total size in bytes. */
  blobTotals(): { count: number; bytes: number } {
    return this.s.blobBytes.get() ?? { count: 0, bytes: 0 };
  }

  /** True when a blob is linked into some repository whose name starts with `prefix`. */
  blobLinkedUnder(prefix: string, digest: string): boolean {
    return this.s.linkedUnder.get(digest, prefix, prefix) !== undefined;
  }

  /** Removes a blob's link from a repository; false when it was not linked. */
  unlinkBlob(repository: string, digest: string): boolean {
    const id = this.s.repoId.get(repository)?.id;
    if (id === undefined) return false;
    return this.s.unlinkBlob.run(id, digest).changes > 0;
  }

  getManifest(repository: string, digest: string): StoredManifest | null {
    const row = this.s.getManifest.get(repository, digest);
    return row ? toManifest(row) : null;
  }

  resolveTag(repository: string, tag: string): string | null {
    return this.s.tagDigest.get(repository, tag)?.digest ?? null;
  }

  /** A tag's digest and when it was last pointed (the mirror's resolution age). */
  tagResolution(repository: string, tag: string): { digest: string; updatedAt: Date } | null {
    const row = this.s.tagResolution.get(repository, tag);
    return row ? { digest: row.digest, updatedAt: new Date(row.updated_at) } : null;
  }

  /** Stores a manifest and points `tags` at it, in one transaction. */
  putManifest(repository: string, manifest: StoredManifest, tags: readonly string[]): void {
    this.db.transaction(() => {
      const id = this.ensureRepo(repository);
      this.s.upsertManifest.run(
        id,
        manifest.digest,
        manifest.mediaType,
        manifest.artifactType,
        manifest.subjectDigest,
        manifest.annotations === null ? null : JSON.stringify(manifest.annotations),
        manifest.size,
        manifest.content,
        this.now(),
        this.now(),
      );
      for (const tag of tags) this.s.upsertTag.run(id, tag, manifest.digest, this.now());
    })();
  }

  /** Renews a manifest's last use (a pull through the mirror). */
  touchManifest(repository: string, digest: string): void {
    this.s.touchManifest.run(this.now(), repository, digest);
  }

  /** Every stored manifest with its repository and last use (what eviction plans from). */
  manifestEntries(): ManifestEntry[] {
    return this.s.manifestEntries.all().map((r) => ({
      repository: r.repository,
      digest: r.digest,
      mediaType: r.media_type,
      size: r.size,
      usedAt: new Date(r.used_at),
      content: r.content,
    }));
  }

  /**
   * Evicts a manifest (and its tags) unless it was used since `cutoff`, checked in the same
   * statement. True when removed.
   */
  evictManifestIfUnused(repository: string, digest: string, cutoff: Date): boolean {
    return this.s.evictManifest.run(repository, digest, cutoff.getTime()).changes > 0;
  }

  /** Blobs linked only into mirrored repositories (the mirror may evict them). */
  mirrorOnlyBlobs(): MirrorOnlyBlob[] {
    return this.s.mirrorOnlyBlobs
      .all()
      .map((r) => ({ digest: r.digest, size: r.size, touchedAt: new Date(r.touched_at) }));
  }

  /**
   * Bytes the mirror's size limit counts: blobs linked only into mirrored repositories, plus
   * the mirror's manifests. A layer a tenant or `library/` also holds is not counted (evicting
   * the mirror would not free it).
   */
  mirrorUsageBytes(): number {
    return this.s.mirrorUsage.get()?.bytes ?? 0;
  }

  /** Blobs and manifests per namespace class, every class present (zeros included). */
  namespaceTotals(): NamespaceTotals[] {
    const out = new Map<NamespaceClass, NamespaceTotals>();
    for (const namespace of ['library', 'mirror', 'cache', 'tenant'] as const) {
      out.set(namespace, { namespace, blobs: 0, blobBytes: 0, manifests: 0, manifestBytes: 0 });
    }
    for (const r of this.s.namespaceBlobs.all()) {
      const t = out.get(r.namespace);
      if (t) Object.assign(t, { blobs: r.count, blobBytes: r.bytes });
    }
    for (const r of this.s.namespaceManifests.all()) {
      const t = out.get(r.namespace);
      if (t) Object.assign(t, { manifests: r.count, manifestBytes: r.bytes });
    }
    return [...out.values()];
  }

  /** Deletes a manifest and every tag pointing at it; false when unknown. */
  deleteManifest(repository: string, digest: string): boolean {
    const id = this.s.repoId.get(repository)?.id;
    if (id === undefined) return false;
    return this.s.deleteManifest.run(id, digest).changes > 0;
  }

  deleteTag(repository: string, tag: string): boolean {
    const id = this.s.repoId.get(repository)?.id;
    if (id === undefined) return false;
    return this.s.deleteTag.run(id, tag).changes > 0;
  }

  /** Tags in lexical order after `last`, at most `limit`. */
  listTags(repository: string, last: string, limit: number): string[] {
    return this.s.listTags.all(repository, last, limit).map((r) => r.name);
  }

  referrers(repository: string, subjectDigest: string): StoredManifest[] {
    return this.s.referrers.all(repository, subjectDigest).map(toManifest);
  }

  createSession(id: string, repository: string): UploadSession {
    const now = this.now();
    this.s.insertSession.run(id, repository, now, now);
    return toSession({ id, repository, size: 0, created_at: now, updated_at: now });
  }

  getSession(id: string): UploadSession | null {
    const row = this.s.getSession.get(id);
    return row ? toSession(row) : null;
  }

  updateSessionSize(id: string, size: number): void {
    this.s.updateSession.run(size, this.now(), id);
  }

  deleteSession(id: string): void {
    this.s.deleteSession.run(id);
  }

  /** Sessions idle since before `cutoff`. */
  expiredSessions(cutoff: Date): UploadSession[] {
    return this.s.expiredSessions.all(cutoff.getTime()).map(toSession);
  }

  /** Every upload session, live or expired. */
  sessions(): UploadSession[] {
    return this.s.allSessions.all().map(toSession);
  }

  sessionIds(): Set<string> {
    return new Set(this.s.allSessionIds.all().map((r) => r.id));
  }
}
