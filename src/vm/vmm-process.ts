import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

/** A spawned VMM process with its exit as a promise and an idempotent SIGKILL. */
export interface VmmProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** argv[0] basename the process runs as (after any wrapper exec'd it). */
  readonly executable: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILLs the process (if still running) and resolves once it has exited. */
  kill(): Promise<void>;
}

const SETPRIV = '/usr/bin/setpriv';

/**
 * Spawns a VMM binary. Where util-linux `setpriv` exists the VMM is started through it with
 * `--pdeathsig KILL`, which execs the VMM in place (same pid) with PR_SET_PDEATHSIG set: if the
 * daemon dies (even by SIGKILL) the kernel kills its VMs at once, before any restart reaps them.
 * The crash ledger stays the authority; this only closes the window between spawn and record.
 *
 * `stdio` follows child_process semantics; resolves once the process has spawned, rejects when
 * the binary cannot be executed.
 */
export async function spawnVmmProcess(
  binary: string,
  args: readonly string[],
  options: { stdio: ('ignore' | 'pipe' | number)[]; usePdeathsig?: boolean },
): Promise<VmmProcess> {
  const wrap = (options.usePdeathsig ?? true) && existsSync(SETPRIV);
  const child = wrap
    ? spawn(SETPRIV, ['--pdeathsig', 'KILL', '--', binary, ...args], { stdio: options.stdio })
    : spawn(binary, [...args], { stdio: options.stdio });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
    });
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => {
      resolve();
    });
    child.once('error', reject);
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error(`spawning ${binary} gave no pid`);
  let exitedYet = false;
  void exited.then(() => {
    exitedYet = true;
  });
  return {
    child,
    pid,
    executable: path.basename(binary),
    exited,
    kill: async () => {
      if (!exitedYet) child.kill('SIGKILL');
      await exited;
    },
  };
}
