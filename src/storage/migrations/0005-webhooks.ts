import type { Migration } from '../migration.js';

/**
 * Webhooks: per-tenant settings (the default URL and the signing secret, AES-256-GCM
 * encrypted like stored secrets), each event to deliver (stored before the first attempt, so
 * a restart resumes it) and every attempt made. Times are milliseconds since the epoch.
 */
export const migration0005Webhooks: Migration = {
  version: 5,
  name: 'webhooks',
  up(db) {
    db.exec(`
      CREATE TABLE webhook_tenants (
        tenant TEXT PRIMARY KEY,
        default_url TEXT,
        secret_iv BLOB NOT NULL,
        secret_tag BLOB NOT NULL,
        secret_ciphertext BLOB NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
      );
      CREATE TABLE webhook_deliveries (
        id TEXT PRIMARY KEY,
        build_id TEXT NOT NULL,
        tenant TEXT NOT NULL,
        url TEXT NOT NULL,
        event TEXT NOT NULL,
        payload TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        next_attempt_at INTEGER,
        give_up_at INTEGER NOT NULL
      );
      CREATE INDEX webhook_deliveries_build ON webhook_deliveries (build_id, created_at);
      CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (state, next_attempt_at);
      CREATE TABLE webhook_attempts (
        delivery_id TEXT NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
        attempt INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        latency_ms INTEGER NOT NULL,
        status_code INTEGER,
        error TEXT,
        PRIMARY KEY (delivery_id, attempt)
      );
    `);
  },
};
