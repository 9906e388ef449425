import { execFile, type ChildProcess } from 'node:child_process';
import { rm } from 'node:fs/promises';
import { promisify } from 'node:util';
import type { ServerType } from '@hono/node-server';
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

/**
 * Pulls `source` with skopeo into the directory `out` (through `authFile`, TLS not checked,
 * `creds` added), removes `out` whatever happened and returns the pull's wall time in seconds.
 */
export async function timedSkopeoPull(
  authFile: string,
  source: string,
  out: string,
  creds: readonly string[] = [],
): Promise<number> {
  try {
    return await timedSkopeo([
      'copy',
      '--authfile',
      authFile,
      '--src-tls-verify=false',
      ...creds,
      source,
      `dir:${out}`,
    ]);
  } finally {
    await rm(out, { recursive: true, force: true });
  }
}

/** What a bench that runs Kiln against a Distribution has started, `null` for what it has not. */
export interface LoopbackRun {
  /** The HTTP server Kiln's registry listens on. */
  server: ServerType | null;
  /** Closes Kiln's registry and its database. */
  closeKiln: (() => Promise<void>) | null;
  /** The `docker-registry` child process. */
  distribution: ChildProcess | null;
  /** The temp directory that holds everything the run wrote. */
  root: string;
}

/**
 * Stops what a run started, in order: Kiln's HTTP server, then its registry and database, then
 * the Distribution (SIGTERM, awaited until it exits), then removes the run's root.
 */
export async function tearDownLoopbackRun(run: LoopbackRun): Promise<void> {
  const { server, distribution } = run;
  if (server !== null) {
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  }
  if (run.closeKiln !== null) await run.closeKiln();
  if (distribution !== null && distribution.exitCode === null && distribution.signalCode === null) {
    const exited = new Promise<void>((resolve) => {
      distribution.once('exit', () => {
        resolve();
      });
    });
    distribution.kill('SIGTERM');
    await exited;
  }
  await rm(run.root, { recursive: true, force: true });
}
