import { open } from 'node:fs/promises';

/**
 * Creates the scratch disk (DESIGN 3.6): a sparse file of `bytes` (rounded up to 512-byte
 * sectors) that the guest formats for the build engine's storage. No blocks are allocated on
 * the host until the guest writes them.
 */
export async function createScratchVolume(file: string, bytes: number): Promise<void> {
  const size = Math.ceil(bytes / 512) * 512;
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.truncate(size);
  } finally {
    await handle.close();
  }
}
