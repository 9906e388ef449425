import { rm } from 'node:fs/promises';
import path from 'node:path';
import { resolveGuestImage } from './guest-image.js';
import { isRecordedProcessAlive } from './process-identity.js';
import { VmBuildAttempt, type VmBuildAttemptDeps } from './vm-build-attempt.js';
import type { VmProcessRecord } from './vmm.js';
import type {
  BuildRunner,
  BuildRunSink,
  RecoveryReport,
  RunInput,
  RunOutcome,
} from '../builds/build-runner.js';

/** How long recovery waits for a SIGKILLed process to disappear. */
const REAP_WAIT_MS = 5000;

/**
 * What the runner needs: every attempt dependency (see {@link VmBuildAttemptDeps}), passed to
 * each attempt as given, except those it settles per run: the guest image, the registry
 * target and the kernel command line's default.
 */
export interface VmBuildRunnerOptions extends Omit<
  VmBuildAttemptDeps,
  'image' | 'registryTarget' | 'cmdline'
> {
  /** Guest image directory (config.vm.imageDir), resolved again for every run. */
  imageDir: string;
  /**
   * Where the guest's registry forward connects: the daemon's own listener, asked when a VM
   * starts (the daemon listens before the first build runs, so the port is known by then).
   */
  registryTarget: () => { host: string; port: number };
  /** Extra guest kernel command line (default "quiet"). */
  cmdline?: string;
}

/**
 * The BuildRunner that runs every build in a throwaway microVM
 * (docs/architecture.md#a-build-step-by-step). Each `run()` is one VmBuildAttempt; `recover()`
 * reaps what a crashed daemon left (only processes it recorded, matched by pid, start time and
 * executable); `close()` aborts running builds (their VMs are killed) and waits for their cleanup.
 */
export class VmBuildRunner implements BuildRunner {
  private readonly active = new Map<
    string,
    { controller: AbortController; done: Promise<RunOutcome> }
  >();
  private closed = false;

  constructor(private readonly options: VmBuildRunnerOptions) {}

  async run(input: RunInput, sink: BuildRunSink, signal: AbortSignal): Promise<RunOutcome> {
    const { options } = this;
    const controller = new AbortController();
    const combined = AbortSignal.any([signal, controller.signal]);
    if (this.closed) controller.abort({ kind: 'shutdown' });
    const logger = options.logger.child({ buildId: input.build.id });
    const done = (async (): Promise<RunOutcome> => {
      let image;
      try {
        image = await resolveGuestImage(options.imageDir);
      } catch (err) {
        logger.error({ err }, 'guest image unavailable');
        return {
          ok: false,
          code: 'vm_boot_failed',
          message: (err as Error).message,
          logTail: [],
          phaseSeconds: {},
        };
      }
      const { imageDir: _, registryTarget, cmdline, ...deps } = options;
      const attempt = new VmBuildAttempt(
        {
          ...deps,
          logger,
          image,
          cmdline: cmdline ?? 'quiet',
          registryTarget: registryTarget(),
        },
        input,
        sink,
        combined,
      );
      return attempt.run();
    })();
    this.active.set(input.build.id, { controller, done });
    try {
      return await done;
    } finally {
      this.active.delete(input.build.id);
    }
  }

  async recover(): Promise<RecoveryReport> {
    const { ledger, logger } = this.options;
    const { entries, corrupt } = await ledger.list();
    let killedProcesses = 0;
    let removedPaths = 0;
    for (const entry of entries) {
      if (this.active.has(entry.vmId)) continue;
      if (entry.process && (await killIfSame(entry.process))) {
        killedProcesses += 1;
        logger.warn(
          { vmId: entry.vmId, pid: entry.process.pid },
          'killed a VM left by a previous daemon',
        );
      }
      if (isInside(this.options.runRoot, entry.runDir)) {
        await rm(entry.runDir, { recursive: true, force: true });
        removedPaths += 1;
      } else {
        logger.warn(
          { vmId: entry.vmId, runDir: entry.runDir },
          'ledger run dir outside the run root: left alone',
        );
      }
      await ledger.remove(entry.vmId);
    }
    for (const file of corrupt) {
      await rm(file, { force: true });
    }
    if (this.options.caches) {
      // After the VMs are dead: nothing holds a fork open any more.
      const caches = await this.options.caches.recover();
      removedPaths += caches.removedForks + caches.removedFiles;
    }
    if (killedProcesses > 0 || removedPaths > 0) {
      logger.info({ killedProcesses, removedPaths }, 'recovered VMs left by a previous daemon');
    }
    return { killedProcesses, removedPaths };
  }

  async close(): Promise<void> {
    this.closed = true;
    const running = [...this.active.values()];
    for (const { controller } of running) controller.abort({ kind: 'shutdown' });
    await Promise.allSettled(running.map((r) => r.done));
  }
}

/** SIGKILLs the recorded process only if pid, start time and executable all still match. */
async function killIfSame(record: VmProcessRecord): Promise<boolean> {
  if (!(await isRecordedProcessAlive(record))) return false;
  try {
    process.kill(record.pid, 'SIGKILL');
  } catch {
    return false;
  }
  // Not our child any more: poll /proc until the process (or its zombie's identity) is gone.
  const deadline = Date.now() + REAP_WAIT_MS;
  while (Date.now() < deadline && (await isRecordedProcessAlive(record))) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

function isInside(root: string, candidate: string): boolean {
  const rel = path.relative(path.resolve(root), path.resolve(candidate));
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}
