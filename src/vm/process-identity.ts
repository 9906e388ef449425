import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { VmProcessRecord } from './vmm.js';

/**
 * Start time of a process in clock ticks since boot: field 22 of `/proc/<pid>/stat`
 * (proc(5)). Together with the pid it names one process for the machine's uptime, so a pid
 * reused by another process is never mistaken for the one recorded. Null when it is gone.
 */
export async function readProcessStartTicks(pid: number): Promise<number | null> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // Field 2 (comm) is in parentheses and may itself hold spaces or ')': split after the last.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state), so field 22 is rest[19].
  const ticks = Number(rest[19]);
  return Number.isSafeInteger(ticks) ? ticks : null;
}

/** Basename of argv[0] of a running process (`/proc/<pid>/cmdline`), or null when it is gone. */
async function readProcessExecutable(pid: number): Promise<string | null> {
  let cmdline: Buffer;
  try {
    cmdline = await readFile(`/proc/${pid}/cmdline`);
  } catch {
    return null;
  }
  const end = cmdline.indexOf(0);
  const argv0 = cmdline.subarray(0, end === -1 ? cmdline.length : end).toString('utf8');
  return argv0 === '' ? null : path.basename(argv0);
}

/**
 * True only when the process recorded still runs as the same process: same pid, same start
 * time and same executable. Anything else (gone, pid reused, zombie without cmdline) is false.
 */
export async function isRecordedProcessAlive(record: VmProcessRecord): Promise<boolean> {
  const [ticks, executable] = await Promise.all([
    readProcessStartTicks(record.pid),
    readProcessExecutable(record.pid),
  ]);
  return ticks === record.startTicks && executable === record.executable;
}
