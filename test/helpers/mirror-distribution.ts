import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './free-port.js';

const execFileAsync = promisify(execFile);

/** Debian's `docker-registry` (Distribution) on 127.0.0.1 with htpasswd Basic auth. */
export interface DistributionRegistry {
  host: string;
  url: string;
  user: string;
  password: string;
  /** Distribution's filesystem storage (its `rootdirectory`). */
  storageDir: string;
  /** The file Distribution serves a blob (or a manifest, by its digest) from. */
  blobDataPath(digest: string): string;
  /** The process, to stop it by its pid. */
  process: ChildProcess;
  close(): Promise<void>;
}

/**
 * Starts Distribution with a temp config and storage and a bcrypt htpasswd file (written by
 * `htpasswd -B`, the only hash Distribution accepts), and waits until it answers `/v2/`.
 */
export async function startDistribution(
  user = 'mirror',
  password = 'mirror-secret',
): Promise<DistributionRegistry> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kiln-distribution-'));
  const { stdout } = await execFileAsync('htpasswd', ['-Bbn', user, password]);
  const htpasswd = path.join(root, 'htpasswd');
  await writeFile(htpasswd, stdout.trim() + '\n');
  const port = await freePort();
  const config = path.join(root, 'config.yml');
  const storageDir = path.join(root, 'data');
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      'storage:',
      `  filesystem: { rootdirectory: ${storageDir} }`,
      '  delete: { enabled: true }',
      `http: { addr: "127.0.0.1:${port}" }`,
      'auth:',
      `  htpasswd: { realm: kiln-test, path: ${htpasswd} }`,
      '',
    ].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  for (let i = 0; ; i++) {
    try {
      const res = await fetch(`${url}/v2/`);
      await res.body?.cancel();
      if (res.status === 401 || res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (i > 200 || child.exitCode !== null) throw new Error('docker-registry did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return {
    host: `127.0.0.1:${port}`,
    url,
    user,
    password,
    storageDir,
    blobDataPath(digest) {
      const hex = digest.replace(/^sha256:/, '');
      return path.join(
        storageDir,
        'docker',
        'registry',
        'v2',
        'blobs',
        'sha256',
        hex.slice(0, 2),
        hex,
        'data',
      );
    },
    process: child,
    async close() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
      await rm(root, { recursive: true, force: true });
    },
  };
}
