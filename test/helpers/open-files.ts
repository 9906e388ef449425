import { readdir, readlink } from 'node:fs/promises';

/** Files this process holds open under `dir` (from /proc/self/fd). */
export async function openFilesUnder(dir: string): Promise<string[]> {
  const open: string[] = [];
  for (const fd of await readdir('/proc/self/fd')) {
    const target = await readlink(`/proc/self/fd/${fd}`).catch(() => '');
    if (target.startsWith(dir)) open.push(target);
  }
  return open;
}
