import { readdir, readFile } from 'node:fs/promises';
import { readProcessStartTicks } from '../../src/vm/process-identity.js';

/** One process as /proc shows it: pid, start time (so a reused pid is not it) and argv. */
export interface ProcessRecord {
  pid: number;
  startTicks: number;
  argv: string[];
}

/**
 * Every live descendant of `root`, walking `/proc/<pid>/task/<tid>/children` (proc(5)): the
 * processes that `root` started, directly or not, and nothing else on the host.
 */
export async function descendantsOf(root: number): Promise<ProcessRecord[]> {
  const found: ProcessRecord[] = [];
  const pending = [root];
  for (let pid = pending.shift(); pid !== undefined; pid = pending.shift()) {
    let tasks: string[];
    try {
      tasks = await readdir(`/proc/${pid}/task`);
    } catch {
      continue; // gone meanwhile
    }
    for (const tid of tasks) {
      const text = await readFile(`/proc/${pid}/task/${tid}/children`, 'utf8').catch(() => '');
      for (const child of text
        .split(' ')
        .filter((t) => t.trim() !== '')
        .map(Number)) {
        const startTicks = await readProcessStartTicks(child);
        const cmdline = await readFile(`/proc/${child}/cmdline`, 'utf8').catch(() => '');
        if (startTicks === null) continue;
        found.push({ pid: child, startTicks, argv: cmdline.split('\0').filter((a) => a !== '') });
        pending.push(child);
      }
    }
  }
  return found;
}
