import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import BetterSqlite3, { type Database } from 'better-sqlite3';
import { BackupError } from './backup-error.js';
import type { Clock } from '../../common/time/clock.js';
import { BuildDirs } from '../builds/build-dirs.js';
import { TERMINAL_STATUSES } from '../builds/build.js';
import { BlobStore } from '../registry/blob-store.js';
import { parseDigest } from '../registry/digest.js';
import { parseManifest } from '../registry/manifest-document.js';
import { DATABASE_FILE } from '../storage/database.js';
import { syncPath } from '../storage/sync-path.js';

/** The record a backup writes last, at its root; a restore refuses a directory without it. */
export const BACKUP_RECORD_FILE = 'backup.json';
/** Signing keys and the secrets key (auth/key-store.ts, auth/secret-store.ts). */
const KEYS_DIR = 'keys';
/** The registry's root inside the data directory (registry/create-registry.ts). */
const REGISTRY_DIR = 'registry';

/** What a backup holds, written to `backup.json` and returned to the caller. */
export interface BackupRecord {
  format: 1;
  /** When the database snapshot was taken (ISO 8601). */
  createdAt: string;
  /** The highest migration the snapshot had applied. */
  schemaVersion: number;
  builds: number;
  blobs: number;
  blobBytes: number;
  /** Sources of builds that were not finished, so the restored daemon can run them. */
  sources: string[];
  /** Blobs no manifest named any more that the daemon removed during the copy (dropped). */
  blobsGone: number;
  /** Unfinished builds whose source was removed during the copy (they ended meanwhile). */
  sourcesGone: string[];
  /** Every file of the backup but this record, relative to its root: a restore checks them. */
  files: string[];
}

/** Opens a data directory's database without writing to it (no migrations). */
function openSnapshotSource(file: string): Database {
  try {
    return new BetterSqlite3(file, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new BackupError('BACKUP_NO_DATABASE', `no Kiln database at ${file}`, { cause: err });
  }
}

/** Copies `from` to `to` (a reflink where the filesystem has them), mode `mode`, fsynced. */
async function copyDurable(from: string, to: string, mode: number): Promise<void> {
  await copyFile(from, to, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
  await chmod(to, mode);
  await syncPath(to);
}

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

function isInside(child: string, parent: string): boolean {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
}

/**
 * Backs up a data directory while the daemon runs, into `to` (which must not exist):
 *
 * 1. the database first, with SQLite's online backup API (a consistent snapshot; the daemon
 *    keeps writing meanwhile);
 * 2. then the keys (`keys/`: both signing keys and the secrets key);
 * 3. then every blob the snapshot's `registry_blobs` lists, and the source of every build the
 *    snapshot has unfinished.
 *
 * Database first, because blobs are content-addressed and never change once stored: a blob the
 * snapshot names was already complete on disk when the snapshot was taken, so copying after it
 * finds every one of them (what was pushed later is simply not in the backup). The other order
 * would give a database naming blobs pushed after the copy. The only way a listed blob can go
 * in between is garbage collection, which removes blobs no manifest names: such a blob is
 * dropped from the backup's database, and a blob a manifest of the snapshot still names that
 * is gone fails the backup with BACKUP_BLOB_MISSING (run it again).
 *
 * In the backup's copy of the database, registry upload sessions and cache-disk rows are
 * removed: neither their files nor the cache disks are copied (a cache is rebuilt by the next
 * build of its scope; an interrupted push starts its upload again). Everything is written to a
 * sibling `<to>.partial-*` directory, fsynced, and renamed to `to` last, so `to` exists only
 * complete; on any failure the partial directory is removed.
 */
export async function backupDataDir(options: {
  dataDir: string;
  to: string;
  clock: Clock;
}): Promise<BackupRecord> {
  const dataDir = path.resolve(options.dataDir);
  const to = path.resolve(options.to);
  if (isInside(to, dataDir)) {
    throw new BackupError('BACKUP_TARGET_INSIDE_DATA', `${to} lies inside ${dataDir}`);
  }
  const existing = await stat(to).catch((err: unknown) => {
    if (isMissing(err)) return null;
    throw err;
  });
  if (existing !== null) throw new BackupError('BACKUP_TARGET_EXISTS', `${to} already exists`);
  const source = openSnapshotSource(path.join(dataDir, DATABASE_FILE));
  await mkdir(path.dirname(to), { recursive: true });
  const staging = `${to}.partial-${randomBytes(4).toString('hex')}`;
  await mkdir(staging, { mode: 0o700 });
  try {
    const createdAt = options.clock.now().toISOString();
    const stagedDb = path.join(staging, DATABASE_FILE);
    try {
      await source.backup(stagedDb);
    } finally {
      source.close();
    }
    const files: string[] = [DATABASE_FILE];
    files.push(...(await copyKeys(dataDir, staging)));
    const db = new BetterSqlite3(stagedDb, { fileMustExist: true });
    let record: Omit<BackupRecord, 'files' | 'createdAt'>;
    try {
      record = await copyContent(db, dataDir, staging, files);
      // Consolidate the WAL into the file, so the backup is the one file plus what it names.
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
    await chmod(stagedDb, 0o600);
    const full: BackupRecord = { ...record, createdAt, files };
    await writeFile(path.join(staging, BACKUP_RECORD_FILE), `${JSON.stringify(full, null, 2)}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
    await syncTree(staging);
    await rename(staging, to);
    await syncPath(path.dirname(to));
    return full;
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
}

async function copyKeys(dataDir: string, staging: string): Promise<string[]> {
  const from = path.join(dataDir, KEYS_DIR);
  let names: string[];
  try {
    names = (await readdir(from)).sort();
  } catch (err) {
    if (isMissing(err)) throw new BackupError('BACKUP_KEYS_MISSING', `no keys in ${from}`);
    throw err;
  }
  if (names.length === 0) throw new BackupError('BACKUP_KEYS_MISSING', `no keys in ${from}`);
  await mkdir(path.join(staging, KEYS_DIR), { mode: 0o700 });
  const copied: string[] = [];
  for (const name of names) {
    const rel = path.join(KEYS_DIR, name);
    await copyDurable(path.join(dataDir, rel), path.join(staging, rel), 0o600);
    copied.push(rel);
  }
  return copied;
}

/** Copies the blobs and sources the staged snapshot names, fixing the snapshot to match. */
async function copyContent(
  db: Database,
  dataDir: string,
  staging: string,
  files: string[],
): Promise<Omit<BackupRecord, 'files' | 'createdAt'>> {
  const schemaVersion =
    db.prepare<[], { v: number | null }>('SELECT MAX(version) AS v FROM schema_migrations').get()
      ?.v ?? 0;
  // Neither upload files nor cache disks are copied, so the backup forgets them.
  db.exec('DELETE FROM registry_upload_sessions; DELETE FROM cache_disks;');

  // Blobs a stored manifest names must all be in the backup. A manifest that cannot be parsed
  // (the registry accepted it once) could name any blob, so then every blob counts as named.
  const named = new Set<string>();
  let everyBlobNamed = false;
  for (const { media_type, content } of db
    .prepare<[], { media_type: string; content: Buffer }>(
      'SELECT media_type, content FROM registry_manifests',
    )
    .all()) {
    try {
      for (const d of parseManifest(content, media_type).blobs) named.add(d);
    } catch {
      everyBlobNamed = true;
    }
  }

  const fromStore = new BlobStore(path.join(dataDir, REGISTRY_DIR));
  const toStore = new BlobStore(path.join(staging, REGISTRY_DIR));
  const dropBlob = db.transaction((digest: string) => {
    db.prepare('DELETE FROM registry_blob_links WHERE digest = ?').run(digest);
    db.prepare('DELETE FROM registry_blobs WHERE digest = ?').run(digest);
  });
  let blobs = 0;
  let blobBytes = 0;
  let blobsGone = 0;
  const rows = db
    .prepare<[], { digest: string; size: number }>(
      'SELECT digest, size FROM registry_blobs ORDER BY digest',
    )
    .all();
  for (const { digest, size } of rows) {
    const parsed = parseDigest(digest);
    const target = toStore.blobPath(parsed);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    try {
      await copyDurable(fromStore.blobPath(parsed), target, 0o600);
    } catch (err) {
      if (!isMissing(err)) throw err;
      if (everyBlobNamed || named.has(digest)) {
        throw new BackupError(
          'BACKUP_BLOB_MISSING',
          `blob ${digest} is named by a stored manifest but was removed during the backup; run it again`,
          { cause: err },
        );
      }
      dropBlob(digest);
      blobsGone += 1;
      continue;
    }
    const copied = (await stat(target)).size;
    if (copied !== size) {
      throw new BackupError(
        'BACKUP_BLOB_SIZE_MISMATCH',
        `blob ${digest} has ${copied} bytes on disk, its row records ${size}`,
      );
    }
    files.push(path.relative(staging, target));
    blobs += 1;
    blobBytes += size;
  }

  const builds = db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM builds').get()?.n ?? 0;
  const terminal = [...TERMINAL_STATUSES];
  const unfinished = db
    .prepare<string[], { id: string }>(
      `SELECT id FROM builds WHERE status NOT IN (${terminal.map(() => '?').join(', ')}) ORDER BY seq`,
    )
    .all(...terminal);
  const fromDirs = new BuildDirs(dataDir);
  const toDirs = new BuildDirs(staging);
  const sources: string[] = [];
  const sourcesGone: string[] = [];
  for (const { id } of unfinished) {
    const target = toDirs.sourcePath(id);
    await mkdir(path.dirname(target), { recursive: true, mode: 0o700 });
    try {
      await copyDurable(fromDirs.sourcePath(id), target, 0o600);
    } catch (err) {
      if (!isMissing(err)) throw err;
      await rm(path.dirname(target), { recursive: true, force: true });
      sourcesGone.push(id);
      continue;
    }
    files.push(path.relative(staging, target));
    sources.push(id);
  }
  return { format: 1, schemaVersion, builds, blobs, blobBytes, sources, blobsGone, sourcesGone };
}

/** fsyncs every directory under `root` (files were synced as they were copied). */
async function syncTree(root: string): Promise<void> {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    if (entry.isDirectory()) await syncTree(path.join(root, entry.name));
  }
  await syncPath(root);
}
