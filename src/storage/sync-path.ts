import { open } from 'node:fs/promises';

/**
 * fsyncs a file or a directory by its path. A directory's fsync makes the entries created,
 * renamed or removed in it durable: a rename is only safe across a crash once its directory
 * is synced.
 */
export async function syncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
