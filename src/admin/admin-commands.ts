import { backupDataDir } from './backup-data-dir.js';
import { isBackupError } from './backup-error.js';
import { restoreDataDir } from './restore-data-dir.js';
import { systemClock } from '../../common/time/clock.js';
import { CliExit, EXIT, type ExitCode } from '../cli/cli-exit.js';
import type { CliIo } from '../cli/cli-io.js';
import { loadConfig } from '../config/config.js';

/** Options of `kiln admin backup` and `kiln admin restore`. */
export interface AdminDirOptions {
  /** The data directory; default KILN_DATA_DIR as the daemon reads it. */
  data?: string;
}

function dataDirOf(opts: AdminDirOptions, io: CliIo): string {
  return opts.data ?? loadConfig(io.env).server.dataDir;
}

async function asCliExit<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (isBackupError(err)) throw new CliExit(EXIT.failed, `${err.code}: ${err.message}`);
    throw err;
  }
}

/**
 * `kiln admin backup --to DIR [--data DIR]`: backs up the data directory while the daemon runs
 * (docs/operations.md#backups). Runs on the daemon's host, as the daemon's user.
 */
export async function runAdminBackup(
  opts: AdminDirOptions & { to: string },
  io: CliIo,
): Promise<ExitCode> {
  const dataDir = dataDirOf(opts, io);
  const record = await asCliExit(() =>
    backupDataDir({ dataDir, to: opts.to, clock: io.clock ?? systemClock }),
  );
  io.stdout(
    `backed up ${dataDir} to ${opts.to}: schema ${record.schemaVersion}, ${record.builds} builds, ` +
      `${record.blobs} blobs (${record.blobBytes} bytes), ${record.sources.length} unfinished builds' sources\n`,
  );
  if (record.blobsGone > 0) {
    io.stderr(
      `kiln: ${record.blobsGone} unreferenced blobs were collected during the copy (left out)\n`,
    );
  }
  if (record.sourcesGone.length > 0) {
    io.stderr(
      `kiln: builds ${record.sourcesGone.join(', ')} ended during the copy; their sources are not in the backup\n`,
    );
  }
  return EXIT.ready;
}

/**
 * `kiln admin restore --from DIR [--data DIR]`: restores a backup into an empty or missing data
 * directory, with the daemon stopped.
 */
export async function runAdminRestore(
  opts: AdminDirOptions & { from: string },
  io: CliIo,
): Promise<ExitCode> {
  const dataDir = dataDirOf(opts, io);
  const record = await asCliExit(() => restoreDataDir({ from: opts.from, dataDir }));
  io.stdout(
    `restored ${opts.from} (taken ${record.createdAt}, schema ${record.schemaVersion}) into ${dataDir}\n`,
  );
  return EXIT.ready;
}
