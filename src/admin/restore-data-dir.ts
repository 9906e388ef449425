import { randomBytes } from 'node:crypto';
import { cp, mkdir, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import { BACKUP_RECORD_FILE, type BackupRecord } from './backup-data-dir.js';
import { BackupError } from './backup-error.js';
import { BuildDirs } from '../builds/build-dirs.js';
import { DATABASE_FILE } from '../storage/database.js';

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

async function readRecord(from: string): Promise<BackupRecord> {
  const file = path.join(from, BACKUP_RECORD_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (isMissing(err)) throw new BackupError('RESTORE_NOT_A_BACKUP', `no ${file}`);
    throw err;
  }
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch (err) {
    throw new BackupError('RESTORE_NOT_A_BACKUP', `${file} is not JSON`, { cause: err });
  }
  const r = record as Partial<BackupRecord> | null;
  if (r?.format !== 1 || !Array.isArray(r.files)) {
    throw new BackupError('RESTORE_NOT_A_BACKUP', `${file} is not a Kiln backup record`);
  }
  return r as BackupRecord;
}

/**
 * Restores a backup made by `backupDataDir` into `dataDir`, which must not exist or be empty
 * (the daemon is stopped; start it on `dataDir` afterwards: migrations newer than the backup run
 * at start). Every file the backup's record lists is checked first; the copy goes to a sibling
 * `<dataDir>.partial-*` directory renamed into place last, so a failed restore leaves nothing.
 * Modes are kept (keys and database 0600, directories 0700). A build row records its source's
 * absolute path, so the unfinished builds' rows are pointed at their sources under `dataDir`.
 */
export async function restoreDataDir(options: {
  from: string;
  dataDir: string;
}): Promise<BackupRecord> {
  const from = path.resolve(options.from);
  const dataDir = path.resolve(options.dataDir);
  const record = await readRecord(from);
  for (const rel of record.files) {
    if (path.isAbsolute(rel) || rel.split(path.sep).includes('..')) {
      throw new BackupError('RESTORE_NOT_A_BACKUP', `the record names ${rel}, outside the backup`);
    }
    await stat(path.join(from, rel)).catch((err: unknown) => {
      if (isMissing(err))
        throw new BackupError('RESTORE_INCOMPLETE', `${rel} is missing in ${from}`);
      throw err;
    });
  }
  const entries = await readdir(dataDir).catch((err: unknown) => {
    if (isMissing(err)) return null;
    throw err;
  });
  if (entries !== null && entries.length > 0) {
    throw new BackupError('RESTORE_TARGET_NOT_EMPTY', `${dataDir} exists and is not empty`);
  }
  await mkdir(path.dirname(dataDir), { recursive: true });
  const staging = `${dataDir}.partial-${randomBytes(4).toString('hex')}`;
  try {
    await cp(from, staging, {
      recursive: true,
      errorOnExist: true,
      force: false,
      preserveTimestamps: true,
      filter: (src) => path.relative(from, src) !== BACKUP_RECORD_FILE,
    });
    repointSources(path.join(staging, DATABASE_FILE), record.sources, new BuildDirs(dataDir));
    if (entries !== null) await rm(dataDir, { recursive: true });
    await rename(staging, dataDir);
  } catch (err) {
    await rm(staging, { recursive: true, force: true });
    throw err;
  }
  return record;
}

/** Points each unfinished build's stored source path at its copy under the new data directory. */
function repointSources(dbFile: string, ids: readonly string[], dirs: BuildDirs): void {
  const db = new BetterSqlite3(dbFile, { fileMustExist: true });
  try {
    const read = db.prepare<[string], { source_json: string }>(
      'SELECT source_json FROM builds WHERE id = ?',
    );
    const write = db.prepare<[string, string]>('UPDATE builds SET source_json = ? WHERE id = ?');
    db.transaction(() => {
      for (const id of ids) {
        const row = read.get(id);
        if (row === undefined) continue;
        const source = JSON.parse(row.source_json) as Record<string, unknown>;
        write.run(JSON.stringify({ ...source, path: dirs.sourcePath(id) }), id);
      }
    })();
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}
