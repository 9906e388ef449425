import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
export { freePort } from '../test/helpers/free-port.js';

const execFileAsync = promisify(execFile);

/** Polls `url` until it answers at all (any status), or throws the last error past the deadline. */
export async function waitForPing(url: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** Runs `skopeo` with `args` and returns its wall time in seconds. */
export async function timedSkopeo(args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await execFileAsync('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - start) / 1e9;
}
