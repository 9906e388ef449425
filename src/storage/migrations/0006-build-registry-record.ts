import type { Migration } from '../migration.js';

/**
 * What the registry itself saw a build's token do: each manifest it served to the build
 * (`served`: the repository, the reference asked for, the digest answered, and for mirrored
 * images the upstream) and each manifest the build pushed (`pushed`). The build's result is
 * written from these rows, not from the agent's report. Times in milliseconds since the epoch.
 */
export const migration0006BuildRegistryRecord: Migration = {
  version: 6,
  name: 'build-registry-record',
  up(db) {
    db.exec(`
      CREATE TABLE build_registry_record (
        id INTEGER PRIMARY KEY,
        build_id TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('served', 'pushed')),
        upstream TEXT,
        repository TEXT NOT NULL,
        reference TEXT NOT NULL,
        digest TEXT NOT NULL,
        at INTEGER NOT NULL,
        UNIQUE (build_id, kind, repository, reference, digest)
      );
    `);
  },
};
