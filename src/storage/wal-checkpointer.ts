import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { Database, Statement } from 'better-sqlite3';
import type { Logger } from 'pino';
import type { Scheduler } from '../time/scheduler.js';

/** How often the WAL is checkpointed when something was committed since the last time. */
export const CHECKPOINT_INTERVAL_MS = 500;

/**
 * The WAL size (pages) at which the daemon's own connection checkpoints after a commit, as
 * SQLite does by default at 1000: the bound on the WAL should the worker fall behind or stop.
 * A WAL only restarts from its beginning when a write finds every frame copied back; under a
 * steady stream of commits the worker's pass rarely ends between two of them, so this is what
 * resets it then (~64 MiB at 4 KiB pages, about 1,200 builds' transitions).
 */
export const WAL_AUTOCHECKPOINT_PAGES = 16_384;

/** `PRAGMA wal_checkpoint` result (https://sqlite.org/pragma.html#pragma_wal_checkpoint). */
export interface CheckpointResult {
  /** 1 when the checkpoint could not run (another one held the lock). */
  busy: number;
  /** Frames in the WAL. */
  log: number;
  /** Frames copied back into the database file so far. */
  checkpointed: number;
}

/**
 * The worker's code. It runs as a script (`eval`), not a module file, so the same code runs
 * from the compiled daemon and from the TypeScript sources under tsx or vitest, which would
 * not load a `.ts` worker file; it loads the driver from the path the daemon resolved.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const db = new Database(workerData.file, { fileMustExist: true, timeout: 0 });
parentPort.on('message', (message) => {
  if (message === 'close') {
    db.close();
    parentPort.close();
    return;
  }
  try {
    parentPort.postMessage({ ok: db.pragma('wal_checkpoint(PASSIVE)')[0] });
  } catch (err) {
    parentPort.postMessage({ error: String(err && err.message ? err.message : err) });
  }
});
`;

type WorkerReply = { ok: CheckpointResult } | { error: string };

/**
 * Checkpoints the daemon's SQLite WAL on a worker thread, with a connection of its own,
 * every {@link CHECKPOINT_INTERVAL_MS} when anything was committed since the last pass.
 *
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past 1000 pages, on
 * the thread that commits: it copies the pages back and fsyncs the WAL and the database file,
 * stalling the event loop for milliseconds to tens of milliseconds every ~75 builds. A PASSIVE
 * checkpoint (https://sqlite.org/c3ref/wal_checkpoint_v2.html) never blocks the writer or
 * readers, so it runs beside them. Durability is SQLite's with `synchronous=NORMAL` either
 * way: a commit is in the WAL before it returns and reaches the disk with the next
 * checkpoint, which now comes within about half a second instead of after 1000 pages.
 */
export class WalCheckpointer {
  private readonly db: Database;
  private readonly scheduler: Scheduler;
  private readonly logger: Logger;
  private readonly changes: Statement<[], { n: number }>;
  private worker: Worker | null = null;
  private exited: Promise<void> = Promise.resolve();
  private cancelTick = (): void => undefined;
  private pending: ((reply: WorkerReply) => void)[] = [];
  private changesAtLastPass = -1;
  private closePromise: Promise<void> | null = null;

  /** `db` is the daemon's connection to a file database in WAL mode. */
  constructor(options: { db: Database; scheduler: Scheduler; logger: Logger }) {
    if (options.db.memory) throw new Error('an in-memory database has no WAL to checkpoint');
    this.db = options.db;
    this.scheduler = options.scheduler;
    this.logger = options.logger;
    this.changes = this.db.prepare('SELECT total_changes() AS n');
  }

  /** Starts the worker and the periodic pass, and moves the connection's own checkpoint out. */
  start(): void {
    if (this.worker !== null || this.closePromise !== null) {
      throw new Error('WalCheckpointer.start() called twice');
    }
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        driver: createRequire(import.meta.url).resolve('better-sqlite3'),
        file: this.db.name,
      },
    });
    this.worker = worker;
    this.exited = new Promise((resolve) =>
      worker.once('exit', () => {
        resolve();
      }),
    );
    worker.on('message', (reply: WorkerReply) => this.pending.shift()?.(reply));
    worker.on('error', (err) => {
      this.logger.error({ err }, 'the WAL checkpoint worker failed; SQLite checkpoints on commit');
      this.stopped();
    });
    worker.once('exit', () => {
      this.stopped();
    });
    this.db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    this.arm();
  }

  /**
   * Runs one PASSIVE checkpoint on the worker now. Rejects when the worker is not running or
   * SQLite refused the checkpoint.
   */
  checkpoint(): Promise<CheckpointResult> {
    const worker = this.worker;
    if (worker === null)
      return Promise.reject(new Error('the WAL checkpoint worker is not running'));
    return new Promise((resolve, reject) => {
      this.pending.push((reply) => {
        if ('ok' in reply) resolve(reply.ok);
        else reject(new Error(reply.error));
      });
      worker.postMessage('checkpoint');
    });
  }

  /**
   * Stops the periodic pass and the worker (after any checkpoint under way), and gives the
   * connection back SQLite's default automatic checkpoint. Safe to call twice.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.cancelTick();
      const worker = this.worker;
      if (worker !== null) {
        worker.postMessage('close');
        await this.exited;
      }
      if (this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
    })();
    return this.closePromise;
  }

  private arm(): void {
    this.cancelTick = this.scheduler.setTimeout(() => {
      void this.tick();
    }, CHECKPOINT_INTERVAL_MS);
  }

  private async tick(): Promise<void> {
    const changes = this.db.open ? (this.changes.get()?.n ?? 0) : this.changesAtLastPass;
    if (changes !== this.changesAtLastPass) {
      try {
        await this.checkpoint();
        this.changesAtLastPass = changes;
      } catch (err) {
        this.logger.warn({ err }, 'WAL checkpoint failed; the next pass retries it');
      }
    }
    if (this.worker !== null && this.closePromise === null) this.arm();
  }

  /** The worker is gone: answer what waited on it, stop the pass, let SQLite checkpoint. */
  private stopped(): void {
    if (this.worker === null) return;
    this.worker = null;
    this.cancelTick();
    for (const answer of this.pending.splice(0))
      answer({ error: 'the WAL checkpoint worker stopped' });
    if (this.closePromise === null && this.db.open) this.db.pragma('wal_autocheckpoint = 1000');
  }
}
