import type { Database } from 'better-sqlite3';

/** One numbered schema change, applied once inside a transaction. */
export interface Migration {
  version: number;
  name: string;
  up(db: Database): void;
}
