import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';

export interface EngineProcessOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Receives output as it arrives; the next chunk is read only after it resolves. */
  onOutput: (stream: 'stdout' | 'stderr', text: string) => Promise<void>;
  signal?: AbortSignal;
  /** Time between SIGTERM and SIGKILL on cancel. */
  killGraceMs?: number;
}

export interface EngineProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** True when the run was stopped because the signal aborted. */
  cancelled: boolean;
}

/**
 * Runs one engine command in its own process group. Output is consumed with `for await`, so
 * a slow consumer leaves the pipe full and the engine blocks on write instead of anything
 * being dropped. On abort the whole group gets SIGTERM, then SIGKILL after `killGraceMs`;
 * after exit, anything left in the group is killed.
 */
export async function runEngineProcess(
  argv: readonly string[],
  options: EngineProcessOptions,
): Promise<EngineProcessExit> {
  const [command, ...args] = argv;
  if (command === undefined) throw new Error('empty argv');
  if (options.signal?.aborted === true) return { code: null, signal: null, cancelled: true };
  const child = spawn(command, args, {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const pid = child.pid;
  let cancelled = false;
  let killTimer: NodeJS.Timeout | undefined;
  const killGroup = (sig: NodeJS.Signals): void => {
    if (pid === undefined) return;
    try {
      process.kill(-pid, sig);
    } catch {
      // ESRCH: the group is already gone
    }
  };
  const onAbort = (): void => {
    cancelled = true;
    killGroup('SIGTERM');
    killTimer = setTimeout(() => {
      killGroup('SIGKILL');
    }, options.killGraceMs ?? 3000);
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
    (resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code, signal) => {
        resolve({ code, signal });
      });
    },
  );
  try {
    const [r] = await Promise.all([
      exited,
      pump(child.stdout, 'stdout', options.onOutput),
      pump(child.stderr, 'stderr', options.onOutput),
    ]);
    return { ...r, cancelled };
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (killTimer) clearTimeout(killTimer);
    killGroup('SIGKILL');
  }
}

async function pump(
  stream: Readable,
  name: 'stdout' | 'stderr',
  onOutput: EngineProcessOptions['onOutput'],
): Promise<void> {
  stream.setEncoding('utf8');
  for await (const chunk of stream) {
    await onOutput(name, chunk as string);
  }
}

/** Runs a short command and returns its stdout (throws with stderr on failure). */
export async function captureCommand(
  argv: readonly string[],
  env?: NodeJS.ProcessEnv,
): Promise<string> {
  let out = '';
  let err = '';
  const r = await runEngineProcess(argv, {
    env,
    onOutput: (stream, text) => {
      if (stream === 'stdout') out += text;
      else err += text;
      return Promise.resolve();
    },
  });
  if (r.code !== 0) {
    throw new Error(`${argv.join(' ')} exited with ${r.code ?? r.signal ?? '?'}: ${err.trim()}`);
  }
  return out;
}
