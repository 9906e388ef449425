import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/storage/database.js';
import {
  CHECKPOINT_INTERVAL_MS,
  WAL_AUTOCHECKPOINT_PAGES,
  WalCheckpointer,
} from '../../src/storage/wal-checkpointer.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('WalCheckpointer', () => {
  let dir: string;
  let db: Database;
  let clock: ManualClock;
  let checkpointer: WalCheckpointer;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'kiln-wal-'));
    db = openDatabase(path.join(dir, 'kiln.db'));
    db.exec('CREATE TABLE notes (n INTEGER NOT NULL)');
    clock = new ManualClock();
    checkpointer = new WalCheckpointer({ db, scheduler: clock, logger: pino({ level: 'silent' }) });
  });

  afterEach(async () => {
    await checkpointer.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const write = (count: number): void => {
    const insert = db.prepare('INSERT INTO notes (n) VALUES (?)');
    for (let i = 0; i < count; i++) insert.run(i);
  };

  /** Rows in the database file alone, as a power cut would leave it without the WAL's frames. */
  const rowsInMainFile = (): number => {
    const copy = path.join(dir, `copy-${Math.random().toString(36).slice(2)}.db`);
    copyFileSync(path.join(dir, 'kiln.db'), copy);
    const other = new BetterSqlite3(copy, { readonly: true });
    try {
      const hasTable = other
        .prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'notes'")
        .get() as { n: number };
      if (hasTable.n === 0) return -1;
      return (other.prepare('SELECT COUNT(*) AS n FROM notes').get() as { n: number }).n;
    } finally {
      other.close();
    }
  };

  it('copies committed pages into the database file on its worker once the interval passes', async () => {
    checkpointer.start();
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(WAL_AUTOCHECKPOINT_PAGES);
    write(50);
    expect(rowsInMainFile()).toBe(-1);
    clock.advance(CHECKPOINT_INTERVAL_MS - 1);
    expect(rowsInMainFile()).toBe(-1);
    clock.advance(1);
    // The next pass is armed once this one has answered.
    await clock.whenArmed(1);
    expect(rowsInMainFile()).toBe(50);
    write(5);
    clock.advance(CHECKPOINT_INTERVAL_MS);
    await vi.waitFor(() => {
      expect(rowsInMainFile()).toBe(55);
    });
  });

  it('runs no checkpoint in a pass when nothing was committed since the last one', async () => {
    checkpointer.start();
    write(3);
    clock.advance(CHECKPOINT_INTERVAL_MS);
    await clock.whenArmed(1);
    const checkpoint = vi.spyOn(checkpointer, 'checkpoint');
    clock.advance(CHECKPOINT_INTERVAL_MS);
    await clock.whenArmed(1);
    expect(checkpoint).not.toHaveBeenCalled();
    write(1);
    clock.advance(CHECKPOINT_INTERVAL_MS);
    await clock.whenArmed(1);
    expect(checkpoint).toHaveBeenCalledTimes(1);
  });

  it('reports every frame of the WAL copied back by checkpoint()', async () => {
    checkpointer.start();
    write(20);
    const result = await checkpointer.checkpoint();
    expect(result.busy).toBe(0);
    expect(result.log).toBeGreaterThan(0);
    expect(result.checkpointed).toBe(result.log);
  });

  it('stops its worker and pass on close(), twice, and gives SQLite its automatic checkpoint back', async () => {
    checkpointer.start();
    await checkpointer.close();
    await checkpointer.close();
    expect(clock.pending).toBe(0);
    expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(1000);
    await expect(checkpointer.checkpoint()).rejects.toThrow('not running');
    expect(() => {
      checkpointer.start();
    }).toThrow('called twice');
  });

  it('refuses an in-memory database', () => {
    const memory = new BetterSqlite3(':memory:');
    try {
      expect(
        () =>
          new WalCheckpointer({ db: memory, scheduler: clock, logger: pino({ level: 'silent' }) }),
      ).toThrow('in-memory');
    } finally {
      memory.close();
    }
  });
});
