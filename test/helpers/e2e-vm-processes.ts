import { readdir, readFile } from 'node:fs/promises';

/**
 * Pids of running QEMU processes whose command line mentions `needle` (a data dir or a build
 * id): how the e2e tests check that no VM outlived its build.
 */
export async function findQemuProcesses(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmdline: string;
    try {
      cmdline = (await readFile(`/proc/${name}/cmdline`)).toString('utf8');
    } catch {
      continue;
    }
    const argv = cmdline.split('\0');
    if (argv.some((a) => a.includes('qemu-system')) && cmdline.includes(needle)) {
      pids.push(Number(name));
    }
  }
  return pids;
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
