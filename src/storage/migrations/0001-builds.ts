import type { Migration } from '../migration.js';

/**
 * The daemon core's tables: builds (request, source, result, timings), their event log, and
 * tenants' encrypted secrets. Times are milliseconds since the epoch.
 */
export const migration0001Builds: Migration = {
  version: 1,
  name: 'builds',
  up(db) {
    db.exec(`
      CREATE TABLE builds (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        tenant TEXT NOT NULL,
        status TEXT NOT NULL,
        request_json TEXT NOT NULL,
        source_json TEXT NOT NULL,
        repository TEXT NOT NULL,
        cache_repository TEXT,
        created_at INTEGER NOT NULL,
        started_at INTEGER,
        finished_at INTEGER,
        attempts INTEGER NOT NULL DEFAULT 0,
        result_json TEXT,
        failure_json TEXT,
        timings_json TEXT NOT NULL DEFAULT '{}',
        log_bytes INTEGER NOT NULL DEFAULT 0,
        log_truncated INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX builds_tenant_seq ON builds (tenant, seq);
      CREATE INDEX builds_status ON builds (status, seq);
      CREATE TABLE build_events (
        build_id TEXT NOT NULL REFERENCES builds (id) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        type TEXT NOT NULL,
        data_json TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (build_id, id)
      ) WITHOUT ROWID;
      CREATE TABLE secrets (
        tenant TEXT NOT NULL,
        id TEXT NOT NULL,
        iv BLOB NOT NULL,
        tag BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        PRIMARY KEY (tenant, id)
      ) WITHOUT ROWID;
    `);
  },
};
