import type { Migration } from '../migration.js';

/**
 * `registry_blobs.touched_at`: when the registry last found the blob for someone (a HEAD or
 * GET, a mount, an upload's existence check, a manifest PUT naming it) or stored it. Blob
 * garbage collection removes only blobs untouched for its grace period, so a client that has
 * just been told a blob exists can still push the manifest that references it. Existing rows
 * start at their creation time. Milliseconds since the epoch.
 */
export const migration0007RegistryBlobTouchedAt: Migration = {
  version: 7,
  name: 'registry-blob-touched-at',
  up(db) {
    db.exec(`
      ALTER TABLE registry_blobs ADD COLUMN touched_at INTEGER NOT NULL DEFAULT 0;
      UPDATE registry_blobs SET touched_at = created_at;
    `);
  },
};
