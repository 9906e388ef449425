import type { Migration } from '../migration.js';

/**
 * `registry_manifests.used_at`: when the manifest was last served through the pull-through
 * mirror (or stored). Mirror eviction removes the least recently used mirrored manifests
 * first, and never one used within the garbage-collection grace period. Existing rows start at
 * their creation time. Milliseconds since the epoch.
 */
export const migration0008RegistryManifestUsedAt: Migration = {
  version: 8,
  name: 'registry-manifest-used-at',
  up(db) {
    db.exec(`
      ALTER TABLE registry_manifests ADD COLUMN used_at INTEGER NOT NULL DEFAULT 0;
      UPDATE registry_manifests SET used_at = created_at;
    `);
  },
};
