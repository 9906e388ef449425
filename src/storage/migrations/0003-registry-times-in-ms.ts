import type { Database } from 'better-sqlite3';
import type { Migration } from '../migration.js';

/**
 * Every table of the registry migration (0002) stored its times as ISO-8601 text while the
 * rest of the database stores milliseconds since the epoch as INTEGER. This rewrites those
 * tables with INTEGER columns and converts their rows, so one spelling of time holds across
 * the database; `schema_migrations.applied_at` follows (new databases create it as INTEGER).
 *
 * SQLite cannot change a column's type in place, so each table is rebuilt: create it under a
 * temporary name, copy with conversion, drop the old one, rename, recreate its indexes
 * (sqlite.org/lang_altertable.html, "Making Other Kinds Of Table Schema Changes"). The runner
 * holds foreign keys on and the whole migration in one transaction, where
 * `PRAGMA foreign_keys` cannot be switched off; so the new tables reference each other under
 * their temporary names (no new row ever points at an old table), the old tables are dropped
 * children first (the implicit DELETE of a DROP only cascades into old tables already empty
 * or gone), and the renames carry the references along.
 */
export const migration0003RegistryTimesInMs: Migration = {
  version: 3,
  name: 'registry-times-in-ms',
  up(db) {
    db.function('kiln_iso_to_ms', { deterministic: true }, isoToMs);
    db.exec(`
      CREATE TABLE registry_repositories_ms (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE registry_blobs_ms (
        digest TEXT PRIMARY KEY,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE TABLE registry_blob_links_ms (
        repository_id INTEGER NOT NULL REFERENCES registry_repositories_ms(id) ON DELETE CASCADE,
        digest TEXT NOT NULL REFERENCES registry_blobs_ms(digest),
        created_at INTEGER NOT NULL,
        PRIMARY KEY (repository_id, digest)
      ) WITHOUT ROWID;
      CREATE TABLE registry_manifests_ms (
        repository_id INTEGER NOT NULL REFERENCES registry_repositories_ms(id) ON DELETE CASCADE,
        digest TEXT NOT NULL,
        media_type TEXT NOT NULL,
        artifact_type TEXT,
        subject_digest TEXT,
        annotations TEXT,
        size INTEGER NOT NULL,
        content BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (repository_id, digest)
      ) WITHOUT ROWID;
      CREATE TABLE registry_tags_ms (
        repository_id INTEGER NOT NULL,
        name TEXT NOT NULL,
        digest TEXT NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (repository_id, name),
        FOREIGN KEY (repository_id, digest)
          REFERENCES registry_manifests_ms(repository_id, digest) ON DELETE CASCADE
      ) WITHOUT ROWID;
      CREATE TABLE registry_upload_sessions_ms (
        id TEXT PRIMARY KEY,
        repository TEXT NOT NULL,
        size INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE schema_migrations_ms (
        version INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        applied_at INTEGER NOT NULL
      );

      INSERT INTO registry_repositories_ms (id, name, created_at)
        SELECT id, name, kiln_iso_to_ms(created_at) FROM registry_repositories;
      INSERT INTO registry_blobs_ms (digest, size, created_at)
        SELECT digest, size, kiln_iso_to_ms(created_at) FROM registry_blobs;
      INSERT INTO registry_blob_links_ms (repository_id, digest, created_at)
        SELECT repository_id, digest, kiln_iso_to_ms(created_at) FROM registry_blob_links;
      INSERT INTO registry_manifests_ms
          (repository_id, digest, media_type, artifact_type, subject_digest, annotations, size,
           content, created_at)
        SELECT repository_id, digest, media_type, artifact_type, subject_digest, annotations, size,
               content, kiln_iso_to_ms(created_at)
          FROM registry_manifests;
      INSERT INTO registry_tags_ms (repository_id, name, digest, updated_at)
        SELECT repository_id, name, digest, kiln_iso_to_ms(updated_at) FROM registry_tags;
      INSERT INTO registry_upload_sessions_ms (id, repository, size, created_at, updated_at)
        SELECT id, repository, size, kiln_iso_to_ms(created_at), kiln_iso_to_ms(updated_at)
          FROM registry_upload_sessions;
      INSERT INTO schema_migrations_ms (version, name, applied_at)
        SELECT version, name, kiln_iso_to_ms(applied_at) FROM schema_migrations;

      DROP TABLE registry_tags;
      DROP TABLE registry_manifests;
      DROP TABLE registry_blob_links;
      DROP TABLE registry_repositories;
      DROP TABLE registry_blobs;
      DROP TABLE registry_upload_sessions;
      DROP TABLE schema_migrations;

      ALTER TABLE registry_repositories_ms RENAME TO registry_repositories;
      ALTER TABLE registry_blobs_ms RENAME TO registry_blobs;
      ALTER TABLE registry_blob_links_ms RENAME TO registry_blob_links;
      ALTER TABLE registry_manifests_ms RENAME TO registry_manifests;
      ALTER TABLE registry_tags_ms RENAME TO registry_tags;
      ALTER TABLE registry_upload_sessions_ms RENAME TO registry_upload_sessions;
      ALTER TABLE schema_migrations_ms RENAME TO schema_migrations;

      CREATE INDEX registry_blob_links_digest ON registry_blob_links(digest);
      CREATE INDEX registry_manifests_subject ON registry_manifests(repository_id, subject_digest);
      CREATE INDEX registry_tags_digest ON registry_tags(repository_id, digest);
      CREATE INDEX registry_upload_sessions_updated ON registry_upload_sessions(updated_at);
    `);
    assertForeignKeysHold(db);
  },
};

/**
 * An ISO-8601 time as written by `Date.prototype.toISOString()` → milliseconds since the
 * epoch. A value already numeric (a `schema_migrations` row of a database created after this
 * migration existed) passes through; anything unparseable aborts the migration, which rolls
 * back, rather than storing a wrong time.
 */
function isoToMs(value: unknown): number {
  if (typeof value === 'number' || typeof value === 'bigint') return Number(value);
  const ms = typeof value === 'string' ? Date.parse(value) : Number.NaN;
  if (Number.isNaN(ms)) throw new Error(`cannot convert ${JSON.stringify(value)} to a time`);
  return ms;
}

/** Fails the migration if a rebuilt table's rows no longer satisfy their foreign keys. */
function assertForeignKeysHold(db: Database): void {
  const broken = db.pragma('foreign_key_check') as unknown[];
  if (broken.length > 0) {
    throw new Error(`foreign keys broken after rebuilding tables: ${JSON.stringify(broken)}`);
  }
}
