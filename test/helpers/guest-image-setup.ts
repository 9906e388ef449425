import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './e2e-daemon.js';

const execFileAsync = promisify(execFile);

/**
 * Vitest global setup of the suites that boot the guest image: builds the image from this
 * checkout's recipe and agent (skipped in seconds when its inputs are unchanged) and points
 * `KILN_IMAGE_DIR` at that exact image, so the VMs run the agent of the code under test — not
 * whatever another checkout last made `images/current`. Workers inherit the variable, and the
 * e2e daemons get it from {@link startE2eDaemon}. An operator-set `KILN_IMAGE_DIR` wins.
 * With KILN_BUILDKIT_DIR set (npm run test:buildkit) the recipe builds the BuildKit variant
 * (its own hash, cached like the default one), and an image without BuildKit is an error.
 */
export default async function setup(): Promise<void> {
  if (process.env.KILN_IMAGE_DIR) return;
  const { stdout } = await execFileAsync('bash', [path.join(REPO_ROOT, 'scripts/build-image.sh')], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 20 * 60_000,
  });
  const hash = /\bimage ([0-9a-f]{20}) (?:unchanged|ready)\b/.exec(stdout)?.[1];
  if (!hash) throw new Error(`build-image.sh named no image:\n${stdout.slice(-2000)}`);
  const cache =
    process.env.KILN_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'kiln');
  const dir = path.join(cache, 'images', hash);
  if (process.env.KILN_BUILDKIT_DIR) {
    // Asked for the BuildKit variant: an image without it would only fail later, build by build.
    const { engines } = JSON.parse(await readFile(path.join(dir, 'image.json'), 'utf8')) as {
      engines?: string[];
    };
    if (!engines?.includes('buildkit')) {
      throw new Error(
        `KILN_BUILDKIT_DIR=${process.env.KILN_BUILDKIT_DIR} but image ${hash} has no BuildKit (engines: ${engines?.join(', ') ?? 'none'})`,
      );
    }
  }
  process.env.KILN_IMAGE_DIR = dir;
}
