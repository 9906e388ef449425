import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RegistryStore } from '../../../src/registry/registry-store.js';
import { openDatabase } from '../../../src/storage/database.js';
import { migration0001Builds } from '../../../src/storage/migrations/0001-builds.js';
import { migration0002Registry } from '../../../src/storage/migrations/0002-registry.js';
import { MIGRATIONS } from '../../../src/storage/migrations.js';
import { ManualClock } from '../../helpers/manual-clock.js';

const REGISTRY_TABLES = [
  'registry_repositories',
  'registry_blobs',
  'registry_blob_links',
  'registry_manifests',
  'registry_tags',
  'registry_upload_sessions',
];

const T1 = '2026-01-02T03:04:05.678Z';
const T2 = '2026-01-02T03:04:06.001Z';
const T3 = '2026-02-01T00:00:00.000Z';

let dir: string;
let file: string;

beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-mig3-'));
  file = path.join(dir, 'kiln.db');
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A database as the daemon left it before migration 3: the runner's bookkeeping table with
 * ISO text, migrations 1 and 2 applied, and registry rows with ISO times as the registry
 * store wrote them then.
 */
function createBeforeMigration3(rows: { sessionUpdatedAt?: string } = {}): void {
  const db = new BetterSqlite3(file);
  db.pragma('foreign_keys = ON');
  db.exec(
    'CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)',
  );
  for (const m of [migration0001Builds, migration0002Registry]) {
    db.transaction(() => {
      m.up(db);
      db.prepare('INSERT INTO schema_migrations VALUES (?, ?, ?)').run(m.version, m.name, T1);
    })();
  }
  db.exec(`
    INSERT INTO registry_repositories (id, name, created_at) VALUES (7, 'acme/web', '${T1}');
    INSERT INTO registry_blobs (digest, size, created_at) VALUES ('sha256:aa', 3, '${T1}');
    INSERT INTO registry_blob_links (repository_id, digest, created_at) VALUES (7, 'sha256:aa', '${T2}');
    INSERT INTO registry_manifests
      (repository_id, digest, media_type, artifact_type, subject_digest, annotations, size, content, created_at)
      VALUES (7, 'sha256:m1', 'application/vnd.oci.image.manifest.v1+json', NULL, NULL, NULL, 2, x'7b7d', '${T1}'),
             (7, 'sha256:r2', 'application/vnd.oci.image.manifest.v1+json', 'x/sig', 'sha256:m1', '{"k":"v"}', 2, x'7b7d', '${T3}'),
             (7, 'sha256:r1', 'application/vnd.oci.image.manifest.v1+json', 'x/sbom', 'sha256:m1', NULL, 2, x'7b7d', '${T2}');
    INSERT INTO registry_tags (repository_id, name, digest, updated_at) VALUES (7, 'latest', 'sha256:m1', '${T2}');
    INSERT INTO registry_upload_sessions (id, repository, size, created_at, updated_at)
      VALUES ('u1', 'acme/web', 5, '${T1}', '${rows.sessionUpdatedAt ?? T2}');
  `);
  db.close();
}

function columnTypes(db: Database, table: string): Record<string, string> {
  const cols = db.pragma(`table_info(${table})`) as { name: string; type: string }[];
  return Object.fromEntries(cols.map((c) => [c.name, c.type]));
}

function schemaShape(db: Database): unknown {
  const tables = [...REGISTRY_TABLES, 'schema_migrations'];
  return {
    tables: Object.fromEntries(
      tables.map((t) => [
        t,
        {
          columns: db.pragma(`table_info(${t})`),
          foreignKeys: db.pragma(`foreign_key_list(${t})`),
        },
      ]),
    ),
    indexes: db
      .prepare<[], { name: string; tbl_name: string }>(
        "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name",
      )
      .all(),
  };
}

describe('migration 3: registry times in milliseconds', () => {
  it('turns every ISO time column into INTEGER ms and converts existing rows exactly', () => {
    createBeforeMigration3();
    const db = openDatabase(file);
    try {
      for (const table of REGISTRY_TABLES) {
        for (const [name, type] of Object.entries(columnTypes(db, table))) {
          if (name.endsWith('_at')) expect(type, `${table}.${name}`).toBe('INTEGER');
        }
      }
      expect(columnTypes(db, 'schema_migrations').applied_at).toBe('INTEGER');
      const at = (sql: string) => db.prepare<[], { v: unknown }>(sql).get()?.v;
      expect(at('SELECT created_at AS v FROM registry_repositories')).toBe(Date.parse(T1));
      expect(at('SELECT created_at AS v FROM registry_blobs')).toBe(Date.parse(T1));
      expect(at('SELECT created_at AS v FROM registry_blob_links')).toBe(Date.parse(T2));
      expect(at("SELECT created_at AS v FROM registry_manifests WHERE digest = 'sha256:r2'")).toBe(
        Date.parse(T3),
      );
      expect(at('SELECT updated_at AS v FROM registry_tags')).toBe(Date.parse(T2));
      expect(at('SELECT applied_at AS v FROM schema_migrations WHERE version = 1')).toBe(
        Date.parse(T1),
      );
      expect(at('SELECT typeof(applied_at) AS v FROM schema_migrations WHERE version = 3')).toBe(
        'integer',
      );
      expect(
        db.prepare('SELECT version FROM schema_migrations ORDER BY version').pluck().all(),
      ).toEqual(MIGRATIONS.map((m) => m.version));
    } finally {
      db.close();
    }
  });

  it('leaves the rows readable by the registry store, in the same order, with their links', () => {
    createBeforeMigration3();
    const db = openDatabase(file);
    try {
      const store = new RegistryStore(db, new ManualClock(Date.parse(T3)));
      expect(store.getSession('u1')).toEqual({
        id: 'u1',
        repository: 'acme/web',
        size: 5,
        createdAt: new Date(T1),
        updatedAt: new Date(T2),
      });
      expect(store.expiredSessions(new Date(T2)).map((s) => s.id)).toEqual([]);
      expect(store.expiredSessions(new Date(Date.parse(T2) + 1)).map((s) => s.id)).toEqual(['u1']);
      expect(store.referrers('acme/web', 'sha256:m1').map((m) => m.digest)).toEqual([
        'sha256:r1',
        'sha256:r2',
      ]);
      expect(store.resolveTag('acme/web', 'latest')).toBe('sha256:m1');
      expect(store.linkedBlobSize('acme/web', 'sha256:aa')).toBe(3);
      expect(db.pragma('foreign_key_check')).toEqual([]);
      // The rebuilt tables still cascade: a manifest's tags go with it, a repository's rows too.
      store.deleteManifest('acme/web', 'sha256:m1');
      expect(store.resolveTag('acme/web', 'latest')).toBeNull();
      db.prepare("DELETE FROM registry_repositories WHERE name = 'acme/web'").run();
      expect(db.prepare('SELECT count(*) FROM registry_manifests').pluck().get()).toBe(0);
      expect(db.prepare('SELECT count(*) FROM registry_blob_links').pluck().get()).toBe(0);
    } finally {
      db.close();
    }
  });

  it('gives an upgraded database the same schema as a new one', () => {
    createBeforeMigration3();
    const upgraded = openDatabase(file);
    const fresh = openDatabase(':memory:');
    try {
      expect(schemaShape(upgraded)).toEqual(schemaShape(fresh));
      const referenced = REGISTRY_TABLES.flatMap((t) =>
        (upgraded.pragma(`foreign_key_list(${t})`) as { table: string }[]).map(
          (fk) => `${t}->${fk.table}`,
        ),
      );
      expect(new Set(referenced)).toEqual(
        new Set([
          'registry_blob_links->registry_blobs',
          'registry_blob_links->registry_repositories',
          'registry_manifests->registry_repositories',
          'registry_tags->registry_manifests',
        ]),
      );
      expect(
        upgraded
          .prepare("SELECT name FROM sqlite_master WHERE name LIKE '%\\_ms' ESCAPE '\\'")
          .all(),
      ).toEqual([]);
    } finally {
      upgraded.close();
      fresh.close();
    }
  });

  it('rolls back and keeps the old tables when a stored time cannot be read', () => {
    createBeforeMigration3({ sessionUpdatedAt: 'yesterday' });
    expect(() => openDatabase(file)).toThrow(/cannot convert "yesterday" to a time/);
    const db = new BetterSqlite3(file);
    try {
      expect(db.prepare('SELECT max(version) FROM schema_migrations').pluck().get()).toBe(2);
      expect(columnTypes(db, 'registry_upload_sessions').updated_at).toBe('TEXT');
      expect(db.prepare('SELECT created_at FROM registry_repositories').pluck().get()).toBe(T1);
    } finally {
      db.close();
    }
  });
});
