import { statSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CacheDisk } from './cache-disk.js';
import type { CacheStore } from './cache-store.js';
import { copyDisk } from './copy-disk.js';
import type { Clock } from '../../common/time/clock.js';
import { AppError } from '../errors/app-error.js';
import { isValidNameComponent } from '../registry/repository-name.js';
import { syncPath } from '../storage/sync-path.js';
import type { CacheDiskSource } from '../vm/cache-disk-source.js';
import { createScratchVolume } from '../vm/scratch-volume.js';

/** Forks live beside the committed disk (same filesystem: commit is a rename). */
const FORKS_DIR = 'forks';
/** Build ids name fork files. */
const BUILD_ID = /^[A-Za-z0-9_-]{1,200}$/;

/** A cache disk as `GET /caches` shows it: the row plus what the committed file occupies. */
export interface CacheDiskView extends CacheDisk {
  /** Bytes the committed disk file occupies on the host (allocated blocks); 0 before a commit. */
  usedBytes: number;
}

/** Counts for /metrics, read at scrape time. */
export interface CacheObservation {
  disks: number;
  sizeBytes: number;
  usedBytes: number;
}

/** What fork() hands the VM: a writable disk of its own, and what becomes of it. */
export interface CacheFork {
  readonly tenant: string;
  readonly scope: string;
  readonly buildId: string;
  /** The fork's file, attached to the build's VM. */
  readonly path: string;
  /** True when the fork started from a committed disk, false when it is a fresh, empty one. */
  readonly hit: boolean;
  /**
   * Makes this fork the scope's committed disk (fsync, rename, row): the last commit wins.
   * Resolves false, having removed the fork, when the disk was deleted or pruned meanwhile.
   */
  commit(): Promise<boolean>;
  /** Removes the fork; the committed disk stays as it was. Idempotent. */
  discard(): Promise<void>;
}

export interface CacheDisksOptions {
  /** `<data>/caches`: disks are `<root>/<tenant>/<scope>/`. */
  root: string;
  store: CacheStore;
  clock: Clock;
  logger: Logger;
  /** Size of a disk created for a scope that has none. */
  defaultSizeBytes: number;
  /** Percent of a disk past which the guest's engine prunes (config.caches). */
  gcThresholdPercent: number;
  /** Hit/miss counter (metrics). */
  onAttach?: (hit: boolean) => void;
}

/**
 * The one owner of persistent cache disks (docs/architecture.md#cache-disks): their layout under
 * `<root>/<tenant>/<scope>/` (the committed `disk-<build id>.img`, in-flight
 * `forks/<build id>.img`) and their rows. Every method takes the tenant, so nothing can name
 * another tenant's disk.
 *
 * Each build gets a copy-on-write fork (a reflink clone where the filesystem has them, a sparse
 * copy elsewhere) of the committed raw ext4 image; a successful build's fork is renamed into
 * place and the row re-pointed, so a crash at any moment leaves the row naming a whole, untouched
 * file. Files the row does not name are strays, removed by {@link recover} at start. Raw files
 * work under both VMMs, with no overlay chain to flatten.
 */
export class CacheDisks implements CacheDiskSource {
  /** Per-scope serialisation of fork copies, commits, deletes and prunes. */
  private readonly locks = new Map<string, Promise<unknown>>();

  readonly gcThresholdPercent: number;

  constructor(private readonly o: CacheDisksOptions) {
    this.gcThresholdPercent = o.gcThresholdPercent;
  }

  /**
   * At start, before any build runs: removes every fork (no build survives a restart), every
   * disk file its row does not name, and directories of scopes without a row.
   */
  async recover(): Promise<{ removedForks: number; removedFiles: number }> {
    let removedForks = 0;
    let removedFiles = 0;
    const rows = new Map(this.o.store.all().map((d) => [`${d.tenant}/${d.scope}`, d]));
    for (const tenant of await listDir(this.o.root)) {
      const tenantDir = path.join(this.o.root, tenant);
      for (const scope of await listDir(tenantDir)) {
        const dir = path.join(tenantDir, scope);
        const row = rows.get(`${tenant}/${scope}`);
        if (row === undefined) {
          await rm(dir, { recursive: true, force: true });
          removedFiles += 1;
          continue;
        }
        for (const entry of await listDir(dir)) {
          if (entry === FORKS_DIR) {
            removedForks += (await listDir(path.join(dir, FORKS_DIR))).length;
            await rm(path.join(dir, FORKS_DIR), { recursive: true, force: true });
          } else if (entry !== row.committedFile) {
            await rm(path.join(dir, entry), { recursive: true, force: true });
            removedFiles += 1;
          }
        }
      }
    }
    if (removedForks + removedFiles > 0) {
      this.o.logger.info({ removedForks, removedFiles }, 'removed cache forks left by a crash');
    }
    return { removedForks, removedFiles };
  }

  /** The tenant's disks, by scope. */
  async list(tenant: string): Promise<CacheDiskView[]> {
    return Promise.all(this.o.store.list(tenant).map((d) => this.view(d)));
  }

  async get(tenant: string, scope: string): Promise<CacheDiskView> {
    return this.view(this.require(tenant, scope));
  }

  /** Gives a build its own writable fork of the scope's committed disk (a new one if none). */
  async fork(
    tenant: string,
    scope: string,
    buildId: string,
    sizeBytes: number | null = null,
  ): Promise<CacheFork> {
    checkName(tenant);
    checkName(scope);
    if (!BUILD_ID.test(buildId)) {
      throw new Error(`unsafe build id for a cache fork: ${buildId}`);
    }
    const dir = this.scopeDir(tenant, scope);
    const forkPath = path.join(dir, FORKS_DIR, `${buildId}.img`);
    return this.locked(tenant, scope, async () => {
      const now = this.o.clock.now();
      const disk = this.o.store.ensure(tenant, scope, sizeBytes ?? this.o.defaultSizeBytes, now);
      await mkdir(path.join(dir, FORKS_DIR), { recursive: true, mode: 0o700 });
      await rm(forkPath, { force: true });
      const hit = disk.committedFile !== null;
      if (disk.committedFile !== null) {
        await copyDisk(path.join(dir, disk.committedFile), forkPath);
      } else {
        await createScratchVolume(forkPath, disk.sizeBytes);
      }
      this.o.store.touch(tenant, scope, buildId, now);
      this.o.onAttach?.(hit);
      return this.forkHandle(tenant, scope, buildId, forkPath, disk.generation, hit);
    });
  }

  /** Deletes the scope's disk, its row and any fork in flight (their builds commit nothing). */
  async remove(tenant: string, scope: string): Promise<void> {
    this.require(tenant, scope);
    await this.locked(tenant, scope, async () => {
      this.o.store.remove(tenant, scope);
      await rm(this.scopeDir(tenant, scope), { recursive: true, force: true });
    });
  }

  /**
   * Drops the committed contents, keeping the scope and its size: the next build starts from an
   * empty disk, and forks taken before the prune are never committed.
   */
  async prune(tenant: string, scope: string): Promise<CacheDiskView> {
    const disk = this.require(tenant, scope);
    await this.locked(tenant, scope, async () => {
      this.o.store.reset(tenant, scope);
      if (disk.committedFile !== null) {
        await rm(path.join(this.scopeDir(tenant, scope), disk.committedFile), { force: true });
      }
    });
    return this.get(tenant, scope);
  }

  /** Totals over every disk, for the metrics gauges (synchronous: read at scrape time). */
  observe(): CacheObservation {
    let sizeBytes = 0;
    let usedBytes = 0;
    const disks = this.o.store.all();
    for (const d of disks) {
      sizeBytes += d.sizeBytes;
      if (d.committedFile === null) continue;
      try {
        usedBytes +=
          statSync(path.join(this.scopeDir(d.tenant, d.scope), d.committedFile)).blocks * 512;
      } catch {
        // Removed between the row read and the stat: counts as empty.
      }
    }
    return { disks: disks.length, sizeBytes, usedBytes };
  }

  private forkHandle(
    tenant: string,
    scope: string,
    buildId: string,
    forkPath: string,
    generation: number,
    hit: boolean,
  ): CacheFork {
    const dir = this.scopeDir(tenant, scope);
    let settled = false;
    const discard = async (): Promise<void> => {
      settled = true;
      await rm(forkPath, { force: true });
    };
    return {
      tenant,
      scope,
      buildId,
      path: forkPath,
      hit,
      discard,
      commit: async () => {
        if (settled) throw new Error(`cache fork ${buildId} was already committed or discarded`);
        settled = true;
        const file = `disk-${buildId}.img`;
        const target = path.join(dir, file);
        return this.locked(tenant, scope, async () => {
          const current = this.o.store.get(tenant, scope);
          if (current?.generation !== generation) {
            await rm(forkPath, { force: true });
            return false;
          }
          try {
            await syncPath(forkPath);
            await rename(forkPath, target);
            await syncPath(dir);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
            throw err;
          }
          if (!this.o.store.commit(tenant, scope, generation, buildId, file, this.o.clock.now())) {
            await rm(target, { force: true });
            return false;
          }
          if (current.committedFile !== null && current.committedFile !== file) {
            await rm(path.join(dir, current.committedFile), { force: true });
          }
          this.o.logger.info({ tenant, scope, buildId }, 'cache disk committed');
          return true;
        });
      },
    };
  }

  private require(tenant: string, scope: string): CacheDisk {
    const disk = isValidNameComponent(scope) ? this.o.store.get(tenant, scope) : null;
    if (disk === null) throw new AppError('CACHE_NOT_FOUND');
    return disk;
  }

  private async view(disk: CacheDisk): Promise<CacheDiskView> {
    let usedBytes = 0;
    if (disk.committedFile !== null) {
      try {
        const s = await stat(path.join(this.scopeDir(disk.tenant, disk.scope), disk.committedFile));
        usedBytes = s.blocks * 512;
      } catch {
        // Pruned or deleted while listing.
      }
    }
    return { ...disk, usedBytes };
  }

  private scopeDir(tenant: string, scope: string): string {
    return path.join(this.o.root, tenant, scope);
  }

  private async locked<T>(tenant: string, scope: string, fn: () => Promise<T>): Promise<T> {
    const key = `${tenant}/${scope}`;
    const previous = this.locks.get(key) ?? Promise.resolve();
    const next = previous.then(fn, fn);
    const tail = next.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      return await next;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }
}

/** Tenants and scopes are OCI name components: always one safe path component. */
function checkName(name: string): void {
  if (!isValidNameComponent(name)) throw new Error(`not a valid cache path component: ${name}`);
}

async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}
