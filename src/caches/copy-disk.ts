import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * Copies a disk image for a fork: `cp --reflink=auto` clones the file's extents (FICLONE) on
 * a filesystem that shares them (XFS, Btrfs), costing no data copy and no space until the fork
 * writes; elsewhere it falls back to a plain copy, where `--sparse=always` keeps the holes of
 * the sparse image, so the copy costs what the disk uses, not its size.
 */
export async function copyDisk(from: string, to: string): Promise<void> {
  await run('cp', ['--reflink=auto', '--sparse=always', '--', from, to], { timeout: 30 * 60_000 });
}
