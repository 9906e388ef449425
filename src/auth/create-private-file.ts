import { open } from 'node:fs/promises';

/**
 * Creates `file` with mode 0600 holding `data`, synced to disk; never overwrites. Returns false
 * when the file already exists (another start, or another process, created it first).
 */
export async function createPrivateFile(file: string, data: string): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
  return true;
}
