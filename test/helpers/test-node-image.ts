import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './e2e-daemon.js';

const execFileAsync = promisify(execFile);

/** The tag `scripts/build-test-node-image.sh` gives its index. */
export const TEST_NODE_IMAGE_TAG = '22-slim';

/**
 * The OCI image layout of the tests' `node:22-slim` stand-in (a linux/amd64 + linux/arm64
 * index built from Debian packages and the npm registry), built on first use and cached by
 * its inputs. Push it with `skopeo copy --all oci:<layout>:22-slim docker://…`.
 */
export async function testNodeImageLayout(): Promise<string> {
  const { stdout } = await execFileAsync(
    'bash',
    [path.join(REPO_ROOT, 'scripts', 'build-test-node-image.sh')],
    { maxBuffer: 16 * 1024 * 1024, timeout: 15 * 60_000 },
  );
  const layout = stdout.trim().split('\n').at(-1);
  if (!layout) throw new Error('build-test-node-image.sh printed no layout path');
  return layout;
}
