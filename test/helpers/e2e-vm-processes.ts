import { readFile } from 'node:fs/promises';
import { descendantsOf } from './process-tree.js';

/**
 * Pids of running QEMU processes that this test process started (through the daemon it
 * spawned) and whose command line mentions `needle` (a data dir or a build id): how the e2e
 * tests check that no VM outlived its build. Only this process's own descendants are looked
 * at, never the rest of the host; a VM orphaned by a killed daemon is checked by the pid
 * recorded while it was still a descendant ({@link isProcessRunning}).
 */
export async function findQemuProcesses(needle: string): Promise<number[]> {
  const tree = await descendantsOf(process.pid);
  return tree
    .filter(
      (p) => p.argv.some((a) => a.includes('qemu-system')) && p.argv.join(' ').includes(needle),
    )
    .map((p) => p.pid);
}

/** True while `pid` is a live process (not gone, not a zombie waiting to be reaped). */
export async function isProcessRunning(pid: number): Promise<boolean> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  return state !== 'Z' && state !== 'X';
}
