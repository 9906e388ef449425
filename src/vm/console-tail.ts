import { open } from 'node:fs/promises';

/**
 * The last `lines` lines of a VM's serial console log (reading at most `maxBytes` from its
 * end), for failure reports when the agent never spoke. Missing file → [].
 */
export async function readConsoleTail(
  file: string,
  lines: number,
  maxBytes = 64 * 1024,
): Promise<string[]> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return [];
  }
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, maxBytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    const text = buffer
      .toString('utf8')
      .replace(/\r/g, '')
      // Strip ANSI escape sequences the guest kernel or init may emit.
      .replace(new RegExp(`${String.fromCharCode(27)}\\[[0-9;?]*[A-Za-z]`, 'g'), '');
    const all = text.split('\n');
    if (length < size) all.shift(); // first line is probably cut
    while (all.length > 0 && all[all.length - 1]?.trim() === '') all.pop();
    return all.slice(-lines);
  } finally {
    await handle.close();
  }
}
