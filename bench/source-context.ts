import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../test/helpers/e2e-daemon.js';

const execFileAsync = promisify(execFile);

/**
 * The real-sized build context of the source benchmarks: this repository's tree with its
 * node_modules as a tar.gz (`.git` left out), or `src/` alone when `quick`.
 */
export async function packSourceContext(
  file: string,
  quick: boolean,
): Promise<{ entries: number; bytes: number }> {
  const what = quick ? ['src'] : ['.'];
  await execFileAsync('tar', ['-C', REPO_ROOT, '--exclude=./.git', '-czf', file, ...what], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const { stdout } = await execFileAsync('tar', ['-tzf', file], { maxBuffer: 256 * 1024 * 1024 });
  return {
    entries: stdout.split('\n').filter((l) => l !== '').length,
    bytes: (await stat(file)).size,
  };
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}
