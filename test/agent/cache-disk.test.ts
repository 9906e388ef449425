import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diskUsage, isMounted, overThreshold } from '../../agent/volumes/cache-disk.js';

describe('cache disk in the guest', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-cache-disk-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('finds the cache mount point in /proc/mounts and nothing that merely starts with it', async () => {
    const mounts = path.join(dir, 'mounts');
    await writeFile(mounts, '/dev/vda / ext4 ro 0 0\n/dev/vde /cache ext4 rw,noinit_itable 0 0\n');
    expect(await isMounted('/cache', mounts)).toBe(true);
    await writeFile(mounts, '/dev/vde /cache2 ext4 rw 0 0\n');
    expect(await isMounted('/cache', mounts)).toBe(false);
    expect(await isMounted('/cache', path.join(dir, 'absent'))).toBe(false);
  });

  it('prunes only past the threshold', () => {
    expect(overThreshold({ totalBytes: 100, usedBytes: 80 }, 80)).toBe(false);
    expect(overThreshold({ totalBytes: 100, usedBytes: 81 }, 80)).toBe(true);
    expect(overThreshold({ totalBytes: 0, usedBytes: 0 }, 80)).toBe(false);
  });

  it('reads a filesystem’s size and use', async () => {
    const usage = await diskUsage(dir);
    expect(usage.totalBytes).toBeGreaterThan(0);
    expect(usage.usedBytes).toBeGreaterThan(0);
    expect(usage.usedBytes).toBeLessThanOrEqual(usage.totalBytes);
  });
});
