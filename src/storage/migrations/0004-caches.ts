import type { Migration } from '../migration.js';

/**
 * Persistent cache disks, one row per (tenant, scope). `generation` grows on every delete or
 * prune, so a fork taken before one can never be committed after it. Times are milliseconds
 * since the epoch.
 */
export const migration0004Caches: Migration = {
  version: 4,
  name: 'caches',
  up(db) {
    db.exec(`
      CREATE TABLE cache_disks (
        tenant TEXT NOT NULL,
        scope TEXT NOT NULL,
        size_bytes INTEGER NOT NULL,
        generation INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        committed_at INTEGER,
        committed_build_id TEXT,
        committed_file TEXT,
        last_build_id TEXT,
        last_build_at INTEGER,
        PRIMARY KEY (tenant, scope)
      ) WITHOUT ROWID;
    `);
  },
};
