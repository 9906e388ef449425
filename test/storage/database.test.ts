import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/storage/database.js';
import { MIGRATIONS } from '../../src/storage/migrations.js';

describe('openDatabase', () => {
  it('opens in WAL with foreign keys and applies migration 1 once', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'kiln-db-'));
    try {
      const file = path.join(dir, 'kiln.db');
      const db = openDatabase(file);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('foreign_keys', { simple: true })).toBe(1);
      const tables = db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all()
        .map((r) => r.name);
      expect(tables).toEqual(expect.arrayContaining(['builds', 'build_events', 'secrets']));
      db.close();
      const reopened = openDatabase(file);
      const versions = reopened
        .prepare<[], { version: number }>('SELECT version FROM schema_migrations ORDER BY version')
        .all()
        .map((r) => r.version);
      expect(versions).toEqual(MIGRATIONS.map((m) => m.version).sort((a, b) => a - b));
      reopened.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses duplicate migration versions', () => {
    const m = { version: 7, name: 'x', up: () => undefined };
    expect(() => openDatabase(':memory:', [m, { ...m }])).toThrow(/duplicate migration version 7/);
  });
});
