import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { AgentSession, type AgentSessionEvent } from './agent-session.js';
import { createBuildJob } from './build-job-factory.js';
import { writeConfigVolume } from './config-volume.js';
import { readConsoleTail } from './console-tail.js';
import type { GuestImage } from './guest-image.js';
import { LogTailBuffer } from './log-tail-buffer.js';
import { readProcessStartTicks } from './process-identity.js';
import { createScratchVolume } from './scratch-volume.js';
import { prepareSourceVolume } from './source-volume.js';
import type { VmLedger } from './vm-ledger.js';
import type { VmHandle, Vmm } from './vmm.js';
import { isBuildErrorCode, type BuildErrorCode } from '../builds/build-error-code.js';
import type { AbortReason, BuildRunSink, RunInput, RunOutcome } from '../builds/build-runner.js';
import {
  PROTOCOL_VERSION,
  type AgentMessage,
  type BuildPhase,
} from '../protocol/agent-messages.js';
import { DISK_SERIALS } from '../protocol/guest-boot.js';
import type { Clock } from '../time/clock.js';

/** Lines of the serial console appended to a failure's log tail when the agent never spoke. */
const CONSOLE_TAIL_LINES = 30;
/** After the VMM exits, how long the channel may still deliver buffered messages. */
const DRAIN_AFTER_EXIT_MS = 2000;
/** Slack past the build's own timeout before the runner's backstop deadline fires. */
const BACKSTOP_SLACK_SECONDS = 30;

/** What one attempt needs from its runner. */
export interface VmBuildAttemptDeps {
  vmm: Vmm;
  ledger: VmLedger;
  clock: Clock;
  logger: Logger;
  /** `<dataDir>/vms`: run dirs are `<runRoot>/<build id>`. */
  runRoot: string;
  image: GuestImage;
  scratchBytes: number;
  bootTimeoutSeconds: number;
  limits: { maxUnpackedBytes: number; maxEntries: number; maxPathBytes: number };
  /** Extra kernel command line for the guest. */
  cmdline: string;
  /** Where the guest's registry forward connects on the host (the daemon's listener). */
  registryTarget: { host: string; port: number };
}

type Failure = Extract<RunOutcome, { ok: false }>;

/**
 * One build in one microVM, start to end (docs/architecture.md#a-build-step-by-step, steps 4–8):
 * volumes, VM start, the agent conversation, the outcome, and — whatever happened — the VM killed
 * and every file removed before `run()` resolves.
 */
export class VmBuildAttempt {
  private readonly runDir: string;
  private readonly consoleLogPath: string;
  private readonly logTail = new LogTailBuffer();
  private readonly hostPhaseSeconds: Partial<Record<BuildPhase, number>> = {};
  private currentPhase: { phase: BuildPhase; at: number } | null = null;
  private handle: VmHandle | null = null;
  private session: AgentSession | null = null;
  private vmStartedAt = 0;
  private bootSeconds: number | null = null;
  private helloSeen = false;
  private agentSpoke = false;
  private statusBuilding = false;
  private statusPushing = false;
  private settle: ((outcome: RunOutcome) => void) | null = null;
  private readonly timers: NodeJS.Timeout[] = [];

  constructor(
    private readonly deps: VmBuildAttemptDeps,
    private readonly input: RunInput,
    private readonly sink: BuildRunSink,
    private readonly signal: AbortSignal,
  ) {
    this.runDir = path.join(deps.runRoot, input.build.id);
    this.consoleLogPath = path.join(this.runDir, 'console.log');
  }

  async run(): Promise<RunOutcome> {
    const { build } = this.input;
    const log = this.deps.logger;
    if (this.signal.aborted) return this.abortOutcome();
    this.sink.status('booting');
    let outcome: RunOutcome;
    try {
      outcome = await this.boot();
    } catch (err) {
      log.error({ err, buildId: build.id }, 'starting the builder VM failed');
      outcome = await this.failure(
        'vm_boot_failed',
        `starting the builder VM failed: ${(err as Error).message}`,
      );
    } finally {
      await this.cleanup();
    }
    return outcome;
  }

  private async boot(): Promise<RunOutcome> {
    const { build } = this.input;
    const { deps } = this;
    // The ledger learns of the run dir before it exists, so a crash at any point is reaped.
    await deps.ledger.record({ vmId: build.id, runDir: this.runDir, process: null });
    await rm(this.runDir, { recursive: true, force: true });
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });

    const configPath = path.join(this.runDir, 'config.tar');
    const scratchPath = path.join(this.runDir, 'scratch.img');
    await writeConfigVolume(
      configPath,
      createBuildJob(build, {
        guestRegistryAddress: deps.vmm.guestRegistryAddress,
        limits: deps.limits,
      }),
    );
    await createScratchVolume(scratchPath, deps.scratchBytes);
    await prepareSourceVolume(build.source.path, build.source.sizeBytes);
    if (this.signal.aborted) return this.abortOutcome();

    const outcome = new Promise<RunOutcome>((resolve) => {
      this.settle = resolve;
    });
    this.vmStartedAt = deps.clock.now().getTime();
    const handle = await deps.vmm.start({
      id: build.id,
      runDir: this.runDir,
      kernelPath: deps.image.kernelPath,
      initramfsPath: deps.image.initramfsPath,
      cmdline: deps.cmdline,
      memoryMb: build.request.memoryMb,
      cpus: build.request.cpus,
      disks: [
        { path: deps.image.rootfsPath, readOnly: true, serial: DISK_SERIALS.root },
        { path: build.source.path, readOnly: true, serial: DISK_SERIALS.source },
        { path: configPath, readOnly: true, serial: DISK_SERIALS.config },
        { path: scratchPath, readOnly: false, serial: DISK_SERIALS.scratch },
      ],
      network: {
        mode: build.request.networkMode,
        registryTarget: deps.registryTarget,
      },
      consoleLogPath: this.consoleLogPath,
    });
    this.handle = handle;
    await this.recordProcess(handle);
    deps.logger.info(
      { buildId: build.id, pid: handle.pid, vmm: deps.vmm.name, accel: deps.vmm.accel },
      'builder VM started',
    );

    this.watch(handle);
    return outcome;
  }

  private async recordProcess(handle: VmHandle): Promise<void> {
    const startTicks = await readProcessStartTicks(handle.pid);
    if (startTicks === null) return; // already gone: nothing a later daemon could kill
    await this.deps.ledger.record({
      vmId: this.input.build.id,
      runDir: this.runDir,
      process: {
        vmId: this.input.build.id,
        pid: handle.pid,
        startTicks,
        executable: handle.executable ?? this.deps.vmm.name,
      },
    });
  }

  private watch(handle: VmHandle): void {
    const { deps } = this;
    const onAbort = () => {
      this.session?.send({ type: 'cancel', reason: describeAbort(this.signal.reason) });
      this.finish(this.abortOutcome());
    };
    if (this.signal.aborted) {
      onAbort();
      return;
    }
    this.signal.addEventListener('abort', onAbort, { once: true });

    this.later(deps.bootTimeoutSeconds * 1000, () => {
      if (!this.helloSeen) {
        this.fail(
          'vm_boot_failed',
          `the guest agent did not say hello within ${deps.bootTimeoutSeconds} s`,
        );
      }
    });
    const backstop =
      this.input.build.request.timeoutSeconds + deps.bootTimeoutSeconds + BACKSTOP_SLACK_SECONDS;
    this.later(backstop * 1000, () => {
      this.fail('timeout', `the build VM ran past its hard deadline of ${backstop} s`);
    });

    void handle.exited.then((exit) => {
      // Messages the guest wrote just before the VMM exited may still be in the socket:
      // let the channel drain (its close reports agent_lost) before deciding here.
      this.later(this.session ? DRAIN_AFTER_EXIT_MS : 0, () => {
        const how = `code ${String(exit.code)}, signal ${String(exit.signal)}`;
        if (this.helloSeen) {
          this.fail('agent_lost', `the builder VM exited (${how}) before the build ended`);
        } else {
          this.fail('vm_boot_failed', `the builder VM exited (${how}) before the agent started`);
        }
      });
    });

    handle.channel().then(
      (stream) => {
        if (this.settle === null) {
          stream.destroy();
          return;
        }
        this.session = new AgentSession(stream, (event) => {
          this.onAgentEvent(event);
        });
      },
      (err: unknown) => {
        deps.logger.debug({ err, buildId: this.input.build.id }, 'agent channel never connected');
      },
    );
  }

  private onAgentEvent(event: AgentSessionEvent): void {
    switch (event.kind) {
      case 'protocol_error':
        this.fail('agent_protocol_error', `agent protocol error: ${event.detail}`);
        return;
      case 'closed':
        if (this.helloSeen) {
          this.fail('agent_lost', `the agent went away without a result (${event.detail})`);
        } else {
          this.fail('vm_boot_failed', `the agent channel closed before hello (${event.detail})`);
        }
        return;
      case 'message':
        this.agentSpoke = true;
        this.onMessage(event.message);
        return;
    }
  }

  private onMessage(message: AgentMessage): void {
    if (message.type !== 'hello' && !this.helloSeen) {
      this.fail('agent_protocol_error', `the agent sent "${message.type}" before hello`);
      return;
    }
    switch (message.type) {
      case 'hello':
        this.onHello(message.protocol);
        return;
      case 'phase':
        this.onPhase(message.phase);
        return;
      case 'log':
        this.logTail.push(message.data);
        this.sink.log(message.stream, message.data, new Date(message.at));
        return;
      case 'result':
        this.closePhase();
        if (message.ok) {
          this.finish({
            ok: true,
            imageDigest: message.imageDigest,
            pushedRef: `${this.input.build.repository}:${this.input.build.id}`,
            provenance: message.provenance,
            phaseSeconds: { ...this.hostPhaseSeconds, ...message.phaseSeconds },
            bootSeconds: this.bootSeconds ?? 0,
          });
        } else {
          const code: BuildErrorCode = isBuildErrorCode(message.code)
            ? message.code
            : 'build_failed';
          this.finish({
            ok: false,
            code,
            message: message.message,
            logTail: message.logTail.length > 0 ? message.logTail : this.logTail.tail(),
            phaseSeconds: { ...this.hostPhaseSeconds, ...message.phaseSeconds },
            bootSeconds: this.bootSeconds,
          });
        }
        return;
    }
  }

  private onHello(protocol: number): void {
    if (this.helloSeen) {
      this.fail('agent_protocol_error', 'the agent said hello twice');
      return;
    }
    if (protocol !== PROTOCOL_VERSION) {
      this.fail(
        'agent_protocol_error',
        `the agent speaks protocol ${protocol}, the host ${PROTOCOL_VERSION}`,
      );
      return;
    }
    this.helloSeen = true;
    this.bootSeconds = (this.deps.clock.now().getTime() - this.vmStartedAt) / 1000;
    this.sink.vmBooted(this.bootSeconds);
    this.deps.logger.info(
      { buildId: this.input.build.id, bootSeconds: this.bootSeconds },
      'guest agent connected',
    );
    this.session?.send({
      type: 'start',
      registryToken: this.input.registryToken,
      secrets: this.input.secrets,
    });
  }

  private onPhase(phase: BuildPhase): void {
    this.closePhase();
    this.currentPhase = { phase, at: this.deps.clock.now().getTime() };
    this.sink.phase(phase);
    if (!this.statusBuilding) {
      this.statusBuilding = true;
      this.sink.status('building');
    }
    if (phase === 'pushing' && !this.statusPushing) {
      this.statusPushing = true;
      this.sink.status('pushing');
    }
  }

  private closePhase(): void {
    if (!this.currentPhase) return;
    const seconds = (this.deps.clock.now().getTime() - this.currentPhase.at) / 1000;
    this.hostPhaseSeconds[this.currentPhase.phase] = seconds;
    this.currentPhase = null;
  }

  private finish(outcome: RunOutcome): void {
    const settle = this.settle;
    if (!settle) return;
    this.settle = null;
    settle(outcome);
  }

  private later(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(fn, ms));
  }

  private abortOutcome(): Failure {
    this.closePhase();
    const reason = this.signal.reason as AbortReason | undefined;
    const base = {
      logTail: this.logTail.tail(),
      phaseSeconds: { ...this.hostPhaseSeconds },
      bootSeconds: this.bootSeconds,
    };
    switch (reason?.kind) {
      case 'timeout':
        return {
          ok: false,
          code: 'timeout',
          message: `the build exceeded its timeout of ${reason.seconds} s`,
          ...base,
        };
      case 'shutdown':
        return {
          ok: false,
          code: 'daemon_restarted',
          message: 'the daemon shut down during the build',
          ...base,
        };
      case 'cancel':
      case undefined:
        return { ok: false, code: 'cancelled', message: 'the build was cancelled', ...base };
    }
  }

  /** Ends the attempt with a failure outcome (see `failure`). */
  private fail(code: BuildErrorCode, message: string): void {
    void this.failure(code, message).then((f) => {
      this.finish(f);
    });
  }

  /** A failure outcome; when the agent never spoke the console's last lines explain why. */
  private async failure(code: BuildErrorCode, message: string): Promise<Failure> {
    this.closePhase();
    let logTail = this.logTail.tail();
    if (!this.agentSpoke) {
      const consoleTail = await readConsoleTail(this.consoleLogPath, CONSOLE_TAIL_LINES);
      if (consoleTail.length > 0) {
        this.sink.log('system', `${consoleTail.join('\n')}\n`, this.deps.clock.now());
        logTail = [...logTail, '--- builder VM console ---', ...consoleTail];
      }
    }
    return {
      ok: false,
      code,
      message,
      logTail,
      phaseSeconds: { ...this.hostPhaseSeconds },
      bootSeconds: this.bootSeconds,
    };
  }

  /** Always runs: kill the VM, close the channel, delete the run dir and the ledger entry. */
  private async cleanup(): Promise<void> {
    this.settle = null;
    for (const t of this.timers) clearTimeout(t);
    this.session?.close();
    if (this.handle) {
      try {
        await this.handle.kill();
      } catch (err) {
        this.deps.logger.error(
          { err, buildId: this.input.build.id },
          'killing the builder VM failed',
        );
      }
    }
    try {
      await rm(this.runDir, { recursive: true, force: true });
      await this.deps.ledger.remove(this.input.build.id);
    } catch (err) {
      // Left in the ledger: the next recover() retries.
      this.deps.logger.error({ err, buildId: this.input.build.id }, 'removing the run dir failed');
    }
  }
}

function describeAbort(reason: unknown): string {
  const r = reason as AbortReason | undefined;
  switch (r?.kind) {
    case 'timeout':
      return 'timeout';
    case 'shutdown':
      return 'shutdown';
    case 'cancel':
    case undefined:
      return 'cancel';
  }
}
