import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);
const SETPRIV = '/usr/bin/setpriv';

/** Repository root (this file is test/helpers/e2e-daemon.ts). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A real Kiln daemon process (`src/main.ts` under tsx, wired by createDaemon) on 127.0.0.1:<ephemeral>. */
export interface E2eDaemon {
  readonly url: string;
  readonly port: number;
  /** host:port of the registry, as clients like skopeo name it. */
  readonly registry: string;
  readonly dataDir: string;
  readonly pid: number;
  /** Every JSON log line the daemon printed so far. */
  readonly logLines: Record<string, unknown>[];
  /** `kiln token create` with the daemon's configuration. */
  token(tenant: string, scopes: string[]): Promise<string>;
  /** SIGKILL, as a crash; resolves once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful shutdown); resolves once the process is gone. */
  stop(): Promise<void>;
}

export interface E2eDaemonOptions {
  /** Reuse a data dir (restart); by default a new temp dir. */
  dataDir?: string;
  env?: Record<string, string>;
  /** Seconds to wait for the "listening" line (default 120: the KVM probe may boot once). */
  startTimeoutSeconds?: number;
}

/**
 * Spawns the daemon as one process (`node --import tsx src/main.ts`, no npx wrapper, so the pid
 * is the daemon's own and kill -9 hits it) and waits for its `listening` log line.
 */
export async function startE2eDaemon(options: E2eDaemonOptions = {}): Promise<E2eDaemon> {
  const dataDir = options.dataDir ?? (await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-')));
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? os.homedir(),
    KILN_DATA_DIR: dataDir,
    KILN_PORT: '0',
    KILN_HOST: '127.0.0.1',
    KILN_VMM: 'qemu',
    KILN_LOG_LEVEL: 'info',
    ...(process.env.KILN_IMAGE_DIR ? { KILN_IMAGE_DIR: process.env.KILN_IMAGE_DIR } : {}),
    ...(process.env.KILN_CACHE_DIR ? { KILN_CACHE_DIR: process.env.KILN_CACHE_DIR } : {}),
    // No test reaches a public registry: the mirror has no upstreams unless a test names some.
    ...(options.env?.KILN_MIRROR_UPSTREAMS === undefined ? { KILN_MIRROR_AIR_GAPPED: 'true' } : {}),
    ...options.env,
  };
  // setpriv execs the daemon in place (same pid, so kill9 hits the daemon itself) with a
  // parent-death signal: a test worker that is killed does not leave its daemon running.
  const argv = [process.execPath, '--import', 'tsx', 'src/main.ts'];
  const child = existsSync(SETPRIV)
    ? spawn(SETPRIV, ['--pdeathsig', 'TERM', '--', ...argv], {
        cwd: REPO_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, argv.slice(1), {
        cwd: REPO_ROOT,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
  const logLines: Record<string, unknown>[] = [];
  const stderr: string[] = [];
  let buffered = '';
  const listening = new Promise<{ port: number }>((resolve, reject) => {
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const lines = buffered.split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        let value: Record<string, unknown>;
        try {
          value = JSON.parse(line) as Record<string, unknown>;
        } catch {
          continue;
        }
        logLines.push(value);
        if (value.msg === 'listening' && typeof value.port === 'number') {
          resolve({ port: value.port });
        }
      }
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr.push(chunk.toString('utf8'));
    });
    child.once('exit', (code, signal) => {
      reject(
        new Error(
          `daemon exited (code ${String(code)}, signal ${String(signal)}) before listening: ${stderr.join('').slice(-2000)}`,
        ),
      );
    });
  });
  const timeoutMs = (options.startTimeoutSeconds ?? 120) * 1000;
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`daemon did not listen within ${timeoutMs / 1000} s`));
    }, timeoutMs);
  });
  let port: number;
  try {
    ({ port } = await Promise.race([listening, timeout]));
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  } finally {
    clearTimeout(timer);
  }
  const exited = once(child, 'exit').then(() => undefined);
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    registry: `127.0.0.1:${port}`,
    dataDir,
    pid: child.pid!,
    logLines,
    token: async (tenant, scopes) => {
      const { stdout } = await execFileAsync(
        process.execPath,
        [
          '--import',
          'tsx',
          'src/cli/kiln.ts',
          'token',
          'create',
          '--tenant',
          tenant,
          '--scope',
          scopes.join(','),
        ],
        { cwd: REPO_ROOT, env },
      );
      return stdout.trim();
    },
    kill9: async () => {
      if (!gone()) child.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (!gone()) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Stops a daemon and removes its data dir (afterAll). */
export async function disposeE2eDaemon(daemon: E2eDaemon | undefined): Promise<void> {
  if (!daemon) return;
  await daemon.stop();
  await rm(daemon.dataDir, { recursive: true, force: true });
}

/** Exported for the base-image seeding step: runs scripts/seed-base-image.sh. */
export async function seedBaseImage(daemon: E2eDaemon, adminToken: string): Promise<void> {
  await execFileAsync(
    'bash',
    [path.join(REPO_ROOT, 'scripts', 'seed-base-image.sh'), daemon.registry, adminToken],
    {
      timeout: 120_000,
    },
  );
}
