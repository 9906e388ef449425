import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { CacheDiskSource } from './cache-disk-source.js';
import { resolveGuestImage } from './guest-image.js';
import { isRecordedProcessAlive } from './process-identity.js';
import { VmBuildAttempt, type EgressHooks } from './vm-build-attempt.js';
import type { VmLedger } from './vm-ledger.js';
import type { Vmm, VmProcessRecord } from './vmm.js';
import type { Clock } from '../../common/time/clock.js';
import type {
  BuildRunner,
  BuildRunSink,
  RecoveryReport,
  RunInput,
  RunOutcome,
} from '../builds/build-runner.js';
import type { EgressConfig } from '../config/egress-config.js';
import type { LayerCompressionConfig } from '../config/layer-compression-config.js';
import type { Scheduler } from '../time/scheduler.js';

/** How long recovery waits for a SIGKILLed process to disappear. */
const REAP_WAIT_MS = 5000;

export interface VmBuildRunnerOptions {
  vmm: Vmm;
  ledger: VmLedger;
  clock: Clock;
  /** Timers of each attempt (boot deadline, backstop, drain after exit). */
  scheduler: Scheduler;
  logger: Logger;
  /** `<dataDir>/vms`: one run dir per build. */
  runRoot: string;
  /** Guest image directory (config.vm.imageDir). */
  imageDir: string;
  scratchBytes: number;
  bootTimeoutSeconds: number;
  limits: { maxUnpackedBytes: number; maxEntries: number; maxPathBytes: number };
  /** Names of the mirror's upstream registries (config.mirror.upstreams). */
  mirrorUpstreams: readonly string[];
  /** BuildKit's frontend image in the Kiln registry (config.buildkit), null: built-in. */
  buildkitFrontend?: string | null;
  /** What each engine pushes, and why where it differs (config.builds.layerCompression). */
  layerCompression?: LayerCompressionConfig;
  /**
   * Where the guest's registry forward connects: the daemon's own listener, asked when a VM
   * starts (the daemon listens before the first build runs, so the port is known by then).
   */
  registryTarget: () => { host: string; port: number };
  /** The operator's egress settings (config.egress), for `egress` builds' proxies. */
  egress: EgressConfig;
  /** Replaces the egress proxies' resolver, connector or host addresses (tests only). */
  egressHooks?: EgressHooks;
  /** Extra guest kernel command line (default "quiet"). */
  cmdline?: string;
  /** Persistent cache disks for builds with a cache scope. */
  caches?: CacheDiskSource;
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
      const attempt = new VmBuildAttempt(
        {
          vmm: options.vmm,
          ledger: options.ledger,
          clock: options.clock,
          scheduler: options.scheduler,
          logger,
          runRoot: options.runRoot,
          image,
          scratchBytes: options.scratchBytes,
          bootTimeoutSeconds: options.bootTimeoutSeconds,
          limits: options.limits,
          mirrorUpstreams: options.mirrorUpstreams,
          buildkitFrontend: options.buildkitFrontend ?? null,
          ...(options.layerCompression ? { layerCompression: options.layerCompression } : {}),
          cmdline: options.cmdline ?? 'quiet',
          registryTarget: options.registryTarget(),
          ...(options.caches ? { caches: options.caches } : {}),
          egress: options.egress,
          ...(options.egressHooks === undefined ? {} : { egressHooks: options.egressHooks }),
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
