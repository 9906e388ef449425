import { execFile } from 'node:child_process';
import { readFile, statfs } from 'node:fs/promises';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Where the guest init mounts the `kiln-cache` disk (images/rootfs/kiln-init). */
export const CACHE_MOUNT_POINT = '/cache';

/** True when `mountPoint` is a mount point in /proc/mounts (the init mounted the cache disk). */
export async function isMounted(mountPoint: string, procMounts = '/proc/mounts'): Promise<boolean> {
  const text = await readFile(procMounts, 'utf8').catch(() => '');
  return text.split('\n').some((line) => line.split(' ')[1] === mountPoint);
}

/** How full a filesystem is. */
export interface DiskUsage {
  totalBytes: number;
  usedBytes: number;
}

export async function diskUsage(dir: string): Promise<DiskUsage> {
  const s = await statfs(dir);
  const totalBytes = s.blocks * s.bsize;
  return { totalBytes, usedBytes: totalBytes - s.bfree * s.bsize };
}

/** True when the engine should prune its state before building: past the threshold. */
export function overThreshold(usage: DiskUsage, thresholdPercent: number): boolean {
  return usage.totalBytes > 0 && usage.usedBytes * 100 > usage.totalBytes * thresholdPercent;
}

/**
 * Ends the build's use of the cache disk so the host may commit it: flushes the filesystem
 * and unmounts it (which fails while any process still holds a file there, i.e. while the
 * engine has not shut down). Resolves false, having logged why, when either step fails; the
 * host then discards the fork.
 */
export async function releaseCacheDisk(
  mountPoint: string,
  diag: (line: string) => void,
): Promise<boolean> {
  try {
    await run('sync', ['-f', mountPoint], { timeout: 120_000 });
    await run('umount', [mountPoint], { timeout: 120_000 });
    return true;
  } catch (err) {
    diag(`cache disk not released: ${(err as Error).message}`);
    return false;
  }
}
