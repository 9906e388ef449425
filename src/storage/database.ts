import BetterSqlite3, { type Database } from 'better-sqlite3';
import type { Migration } from './migration.js';
import { MIGRATIONS } from './migrations.js';

/** The database's file name inside the data directory (`<data>/kiln.db`). */
export const DATABASE_FILE = 'kiln.db';

/**
 * Opens the daemon's one SQLite database: WAL, foreign keys on, a busy timeout, and every
 * pending migration applied in its own transaction. `:memory:` works for tests.
 */
export function openDatabase(
  file: string,
  migrations: readonly Migration[] = MIGRATIONS,
): Database {
  const db = new BetterSqlite3(file);
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    db.pragma('synchronous = NORMAL');
    migrate(db, migrations);
    return db;
  } catch (err) {
    db.close();
    throw err;
  }
}

function migrate(db: Database, migrations: readonly Migration[]): void {
  db.exec(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)',
  );
  const applied = new Set(
    db
      .prepare<[], { version: number }>('SELECT version FROM schema_migrations')
      .all()
      .map((r) => r.version),
  );
  const sorted = [...migrations].sort((a, b) => a.version - b.version);
  const seen = new Set<number>();
  for (const m of sorted) {
    if (seen.has(m.version)) throw new Error(`duplicate migration version ${m.version}`);
    seen.add(m.version);
  }
  const record = db.prepare(
    'INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)',
  );
  for (const m of sorted) {
    if (applied.has(m.version)) continue;
    db.transaction(() => {
      m.up(db);
      record.run(m.version, m.name, Date.now());
    })();
  }
}
