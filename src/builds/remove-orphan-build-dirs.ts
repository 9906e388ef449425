import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';

/**
 * Removes build directories that have no stored build: what an upload interrupted by a crash
 * (SIGKILL mid-stream) leaves behind. Called at start, before the API accepts uploads.
 * Returns the number of directories removed.
 */
export async function removeOrphanBuildDirs(
  buildsDir: string,
  isKnownBuild: (id: string) => boolean,
): Promise<number> {
  let names: string[];
  try {
    names = await readdir(buildsDir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
    throw err;
  }
  let removed = 0;
  for (const name of names) {
    if (isKnownBuild(name)) continue;
    await rm(path.join(buildsDir, name), { recursive: true, force: true });
    removed += 1;
  }
  return removed;
}
