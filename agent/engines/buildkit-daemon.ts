import { spawn } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { captureCommand } from './engine-process.js';
import { BuildFailure } from '../../common/errors/build-failure.js';

/** The unprivileged account BuildKit runs as (images/rootfs/build-base.sh creates it). */
export interface BuildkitUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export const BUILDKIT_USER: BuildkitUser = {
  name: 'kiln-build',
  uid: 1000,
  gid: 1000,
  home: '/home/kiln-build',
};

/** Where one buildkitd keeps its socket, state and configuration. */
export interface BuildkitDaemonPaths {
  /** XDG_RUNTIME_DIR of the user (memory-backed). */
  runtimeDir: string;
  socket: string;
  config: string;
  /** buildkitd --root (on the scratch or cache disk). */
  root: string;
  tmpDir: string;
}

export interface BuildkitDaemonOptions {
  rootlesskitPath: string;
  buildkitdPath: string;
  buildctlPath: string;
  paths: BuildkitDaemonPaths;
  /** The account to run as; null runs as the agent's own user (tests of the agent only). */
  user: BuildkitUser | null;
  signal: AbortSignal;
  /** How long buildkitd may take to answer on its socket (TCG boots are slow). */
  readyTimeoutMs?: number;
}

export interface BuildkitDaemon {
  /** `unix://…` address for buildctl --addr. */
  address: string;
  /** Seconds from spawn to the daemon answering. */
  readySeconds: number;
  /** buildkitd's pid and uid as this (the VM's initial) namespace sees them, when found. */
  buildkitd: { pid: number; uid: number } | null;
  /** Stops rootlesskit and buildkitd (their process group); safe to call twice. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * argv of rootless buildkitd: rootlesskit makes a user namespace (the user's subordinate ids
 * from /etc/subuid, through the setuid newuidmap) and a mount namespace, in which buildkitd is
 * the mapped root. `--net=host` keeps the VM's network namespace, whose only reachable
 * addresses are the registry forward and the egress proxy (docs/architecture.md#isolation); RUN
 * steps use it as the worker's host network, in their own PID, mount, IPC and UTS namespaces.
 * The OCI worker uses the native overlayfs snapshotter (overlay in a user namespace, kernel ≥
 * 5.11).
 */
export function buildkitdArgv(
  options: Pick<BuildkitDaemonOptions, 'rootlesskitPath' | 'buildkitdPath' | 'paths'>,
): string[] {
  const { paths } = options;
  return [
    options.rootlesskitPath,
    '--net=host',
    `--state-dir=${path.join(paths.runtimeDir, 'rootlesskit-buildkit')}`,
    options.buildkitdPath,
    '--addr',
    `unix://${paths.socket}`,
    '--root',
    paths.root,
    '--config',
    paths.config,
    '--oci-worker-snapshotter=overlayfs',
    '--oci-worker-net=host',
  ];
}

/** Environment of rootless buildkitd: the user's own, nothing of the agent's. */
export function buildkitdEnv(
  user: BuildkitUser | null,
  paths: BuildkitDaemonPaths,
): NodeJS.ProcessEnv {
  return {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: user?.home ?? process.env.HOME ?? '/',
    USER: user?.name ?? process.env.USER ?? 'root',
    LOGNAME: user?.name ?? process.env.USER ?? 'root',
    XDG_RUNTIME_DIR: paths.runtimeDir,
    TMPDIR: paths.tmpDir,
  };
}

const delay = (ms: number): Promise<void> =>
  new Promise((resolve) => {
    setTimeout(resolve, ms);
  });

/**
 * Starts rootless buildkitd and waits until `buildctl debug workers` answers on its socket.
 * Fails with `build_failed` and buildkitd's last output when it exits first or does not answer
 * in time; on abort it stops the daemon and fails as cancelled.
 */
export async function startBuildkitDaemon(options: BuildkitDaemonOptions): Promise<BuildkitDaemon> {
  const started = Date.now();
  const address = `unix://${options.paths.socket}`;
  const child = spawn(buildkitdArgv(options)[0] ?? '', buildkitdArgv(options).slice(1), {
    env: buildkitdEnv(options.user, options.paths),
    cwd: options.user?.home ?? '/',
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(options.user === null ? {} : { uid: options.user.uid, gid: options.user.gid }),
  });
  const pid = child.pid;
  let output = '';
  const keep = (chunk: Buffer): void => {
    output = (output + chunk.toString('utf8')).slice(-8192);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const state: { exited: string | null } = { exited: null };
  const exit = new Promise<void>((resolve) => {
    child.once('error', (err) => {
      state.exited = err.message;
      resolve();
    });
    child.once('close', (code, signal) => {
      state.exited = `exited with ${code ?? signal ?? '?'}`;
      resolve();
    });
  });
  const killGroup = (sig: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // ESRCH: already gone
    }
  };
  let stopped = false;
  const stop = async (graceMs = 5000): Promise<void> => {
    if (stopped) return exit;
    stopped = true;
    killGroup('SIGTERM');
    const timer = setTimeout(() => {
      killGroup('SIGKILL');
    }, graceMs);
    await exit;
    clearTimeout(timer);
    killGroup('SIGKILL');
  };
  const lastLines = (): string => output.trim().split('\n').slice(-5).join('\n') || '(no output)';

  const deadline = started + (options.readyTimeoutMs ?? 90_000);
  for (;;) {
    if (options.signal.aborted) {
      await stop(1000);
      throw new BuildFailure('build_failed', 'the build was cancelled');
    }
    if (state.exited !== null) {
      throw new BuildFailure(
        'build_failed',
        `rootless buildkitd ${state.exited} before it was ready: ${lastLines()}`,
      );
    }
    try {
      await captureCommand([options.buildctlPath, '--addr', address, 'debug', 'workers']);
      break;
    } catch {
      // not answering yet
    }
    if (Date.now() > deadline) {
      await stop(1000);
      throw new BuildFailure(
        'build_failed',
        `rootless buildkitd did not answer on ${options.paths.socket} within ${Math.round((options.readyTimeoutMs ?? 90_000) / 1000)} s: ${lastLines()}`,
      );
    }
    await delay(100);
  }
  return {
    address,
    readySeconds: (Date.now() - started) / 1000,
    buildkitd: await findProcess(path.basename(options.buildkitdPath)),
    stop,
  };
}

/** The first process whose command name is `comm`, with its real uid (from /proc). */
export async function findProcess(
  comm: string,
  procDir = '/proc',
): Promise<{ pid: number; uid: number } | null> {
  const name = comm.slice(0, 15);
  for (const entry of await readdir(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = await readFile(path.join(procDir, entry, 'status'), 'utf8');
      if (/^Name:\s*(.*)$/m.exec(status)?.[1] !== name) continue;
      const uid = /^Uid:\s*(\d+)/m.exec(status)?.[1];
      if (uid !== undefined) return { pid: Number(entry), uid: Number(uid) };
    } catch {
      // gone meanwhile
    }
  }
  return null;
}
