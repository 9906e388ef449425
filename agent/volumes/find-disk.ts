import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Finds the block device whose virtio-blk serial is `serial` (`/sys/block/vd*\/serial`).
 * Disks are never identified by order (common/protocol/guest-boot.ts).
 */
export async function findDiskBySerial(
  serial: string,
  sysBlock = '/sys/block',
  devRoot = '/dev',
): Promise<string | null> {
  let names: string[];
  try {
    names = await readdir(sysBlock);
  } catch {
    return null;
  }
  for (const name of names.filter((n) => n.startsWith('vd')).sort()) {
    try {
      const value = (await readFile(path.join(sysBlock, name, 'serial'), 'utf8')).trim();
      if (value === serial) return path.join(devRoot, name);
    } catch {
      // no serial attribute: not one of ours
    }
  }
  return null;
}
