import type { Migration } from '../migration.js';

/**
 * The OCI registry's tables: repositories, blobs known on disk, per-repository blob
 * links (a blob is visible in a repository only once pushed or mounted there), manifests with
 * their subject/artifactType for the referrers API, tags, and upload sessions. Its times were
 * ISO-8601 text; migration 0003 turns them into milliseconds like every other table's.
 */
export const migration0002Registry: Migration = {
  version: 2,
  name: 'registry',
  up(db) {
    db.exec(`
      CREATE TABLE registry_repositories (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at TEXT NOT NULL
      );
      CREATE TABLE registry_blobs (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE registry_blob_links (
        repository_id INTEGER NOT NULL REFERENCES registry_repositories(id) ON DELETE CASCADE,
        digest TEXT NOT NULL REFERENCES registry_blobs(digest),
        created_at TEXT NOT NULL,
        PRIMARY KEY (repository_id, digest)
      ) WITHOUT ROWID;
      CREATE INDEX registry_blob_links_digest ON registry_blob_links(digest);
      CREATE TABLE registry_manifests (
        repository_id INTEGER NOT NULL REFERENCES registry_repositories(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        artifact_type TEXT,
        subject_digest TEXT,
        annotations TEXT,
        size INTEGER NOT NULL,
        content BLOB NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (repository_id, digest)
      ) WITHOUT ROWID;
      CREATE INDEX registry_manifests_subject ON registry_manifests(repository_id, subject_digest);
      CREATE TABLE registry_tags (
        repository_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (repository_id, name),
        FOREIGN KEY (repository_id, digest)
          REFERENCES registry_manifests(repository_id, digest) ON DELETE CASCADE
      ) WITHOUT ROWID;
      CREATE INDEX registry_tags_digest ON registry_tags(repository_id, digest);
      CREATE TABLE registry_upload_sessions (
        id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      CREATE INDEX registry_upload_sessions_updated ON registry_upload_sessions(updated_at);
    `);
  },
};
