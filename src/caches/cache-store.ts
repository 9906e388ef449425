import type { Database, Statement } from 'better-sqlite3';
import type { CacheDisk } from './cache-disk.js';

interface CacheRow {
  tenant: string;
  scope: string;
  size_bytes: number;
  generation: number;
  created_at: number;
  committed_at: number | null;
  committed_build_id: string | null;
  committed_file: string | null;
  last_build_id: string | null;
  last_build_at: number | null;
}

/** Maps a stored row to the domain type (the one place that knows the columns). */
function toCacheDisk(row: CacheRow): CacheDisk {
  return {
    tenant: row.tenant,
    scope: row.scope,
    sizeBytes: row.size_bytes,
    generation: row.generation,
    createdAt: new Date(row.created_at),
    committedAt: row.committed_at === null ? null : new Date(row.committed_at),
    committedBuildId: row.committed_build_id,
    committedFile: row.committed_file,
    lastBuildId: row.last_build_id,
    lastBuildAt: row.last_build_at === null ? null : new Date(row.last_build_at),
  };
}

/**
 * The `cache_disks` table behind {@link CacheDisks}; nothing else reads or writes it. Every
 * statement is keyed by tenant, so no call can reach another tenant's row.
 */
export class CacheStore {
  private readonly stmts: {
    get: Statement<[string, string], CacheRow>;
    list: Statement<[string], CacheRow>;
    all: Statement<[], CacheRow>;
    insert: Statement<[string, string, number, number]>;
    touch: Statement<[string, number, string, string]>;
    commit: Statement<[number, string, string, string, string, number]>;
    reset: Statement<[string, string]>;
    remove: Statement<[string, string]>;
  };

  constructor(db: Database) {
    this.stmts = {
      get: db.prepare('SELECT * FROM cache_disks WHERE tenant = ? AND scope = ?'),
      list: db.prepare('SELECT * FROM cache_disks WHERE tenant = ? ORDER BY scope'),
      all: db.prepare('SELECT * FROM cache_disks ORDER BY tenant, scope'),
      insert: db.prepare(
        `INSERT INTO cache_disks (tenant, scope, size_bytes, generation, created_at)
         VALUES (?, ?, ?, 1, ?) ON CONFLICT (tenant, scope) DO NOTHING`,
      ),
      touch: db.prepare(
        'UPDATE cache_disks SET last_build_id = ?, last_build_at = ? WHERE tenant = ? AND scope = ?',
      ),
      commit: db.prepare(
        `UPDATE cache_disks SET committed_at = ?, committed_build_id = ?, committed_file = ?
         WHERE tenant = ? AND scope = ? AND generation = ?`,
      ),
      reset: db.prepare(
        `UPDATE cache_disks SET generation = generation + 1, committed_at = NULL,
         committed_build_id = NULL, committed_file = NULL WHERE tenant = ? AND scope = ?`,
      ),
      remove: db.prepare('DELETE FROM cache_disks WHERE tenant = ? AND scope = ?'),
    };
  }

  get(tenant: string, scope: string): CacheDisk | null {
    const row = this.stmts.get.get(tenant, scope);
    return row === undefined ? null : toCacheDisk(row);
  }

  list(tenant: string): CacheDisk[] {
    return this.stmts.list.all(tenant).map(toCacheDisk);
  }

  all(): CacheDisk[] {
    return this.stmts.all.all().map(toCacheDisk);
  }

  /** Creates the row unless it exists; returns the row either way. */
  ensure(tenant: string, scope: string, sizeBytes: number, at: Date): CacheDisk {
    this.stmts.insert.run(tenant, scope, sizeBytes, at.getTime());
    const disk = this.get(tenant, scope);
    if (disk === null) throw new Error(`cache_disks row ${tenant}/${scope} vanished`);
    return disk;
  }

  touch(tenant: string, scope: string, buildId: string, at: Date): void {
    this.stmts.touch.run(buildId, at.getTime(), tenant, scope);
  }

  /** Points the row at a newly committed file; false when the generation moved on meanwhile. */
  commit(
    tenant: string,
    scope: string,
    generation: number,
    buildId: string,
    file: string,
    at: Date,
  ): boolean {
    return (
      this.stmts.commit.run(at.getTime(), buildId, file, tenant, scope, generation).changes === 1
    );
  }

  /** Forgets the committed disk and moves to a new generation. */
  reset(tenant: string, scope: string): boolean {
    return this.stmts.reset.run(tenant, scope).changes === 1;
  }

  remove(tenant: string, scope: string): boolean {
    return this.stmts.remove.run(tenant, scope).changes === 1;
  }
}
