import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { AgentSession, type AgentSessionEvent } from './agent-session.js';
import { createBuildJob } from './build-job-factory.js';
import type { CacheDiskFork, CacheDiskSource } from './cache-disk-source.js';
import { writeConfigVolume } from './config-volume.js';
import { readConsoleTail } from './console-tail.js';
import type { GuestImage } from './guest-image.js';
import { LogTailBuffer } from './log-tail-buffer.js';
import { readProcessStartTicks } from './process-identity.js';
import { createScratchVolume } from './scratch-volume.js';
import { prepareSourceVolume } from './source-volume.js';
import type { VmLedger } from './vm-ledger.js';
import type { VmHandle, Vmm } from './vmm.js';
import { isBuildErrorCode, type BuildErrorCode } from '../../common/errors/build-error-code.js';
import {
  PROTOCOL_VERSION,
  type AgentMessage,
  type BuildPhase,
} from '../../common/protocol/agent-messages.js';
import { pickEngineName, type BuildJob } from '../../common/protocol/build-job.js';
import { DISK_SERIALS } from '../../common/protocol/guest-boot.js';
import type { Clock } from '../../common/time/clock.js';
import type { AbortReason, BuildRunSink, RunInput, RunOutcome } from '../builds/build-runner.js';
import type { EgressConfig } from '../config/egress-config.js';
import type { LayerCompressionConfig } from '../config/layer-compression-config.js';
import { createBuildEgressProxy } from '../egress/create-build-egress-proxy.js';
import type { EgressConnector } from '../egress/egress-connector.js';
import type { EgressProxy } from '../egress/egress-proxy.js';
import type { EgressResolver } from '../egress/egress-resolver.js';
import { summarizeEgress } from '../egress/egress-summary.js';
import type { Scheduler } from '../time/scheduler.js';

/** Lines of the serial console appended to a failure's log tail when the agent never spoke. */
const CONSOLE_TAIL_LINES = 30;
/** After the VMM exits, how long the channel may still deliver buffered messages. */
const DRAIN_AFTER_EXIT_MS = 2000;
/** Slack past the build's own timeout before the runner's backstop deadline fires. */
const BACKSTOP_SLACK_SECONDS = 30;
/** After a successful result on a cache disk, how long the guest has to power off by itself. */
const CACHE_SHUTDOWN_GRACE_MS = 30_000;

/** What one attempt needs from its runner. */
export interface VmBuildAttemptDeps {
  vmm: Vmm;
  ledger: VmLedger;
  clock: Clock;
  /** Runs the boot deadline, the backstop and the drain after the VMM exits. */
  scheduler: Scheduler;
  logger: Logger;
  /** `<dataDir>/vms`: run dirs are `<runRoot>/<build id>`. */
  runRoot: string;
  image: GuestImage;
  scratchBytes: number;
  bootTimeoutSeconds: number;
  limits: { maxUnpackedBytes: number; maxEntries: number; maxPathBytes: number };
  /** Names of the mirror's upstream registries, which the guest maps into the Kiln registry. */
  mirrorUpstreams: readonly string[];
  /** BuildKit's frontend image in the Kiln registry (config.buildkit), null: built-in. */
  buildkitFrontend?: string | null;
  /** What each engine pushes, and why where it differs (config.builds.layerCompression). */
  layerCompression?: LayerCompressionConfig;
  /** Extra kernel command line for the guest. */
  cmdline: string;
  /** Where the guest's registry forward connects on the host (the daemon's listener). */
  registryTarget: { host: string; port: number };
  /** Persistent cache disks; without it every build gets a scratch disk only. */
  caches?: CacheDiskSource;
  /** The operator's egress settings, for the proxy of each `egress` build. */
  egress: EgressConfig;
  /**
   * The proxy's name resolution, outbound connector and host address list; defaults are the
   * system's. Tests inject a resolver that maps hostile names and a connector that refuses any
   * non-loopback address, so no packet leaves the machine.
   */
  egressHooks?: EgressHooks;
}

/** What tests may replace in an egress proxy (see VmBuildAttemptDeps.egressHooks). */
export interface EgressHooks {
  readonly resolve?: EgressResolver;
  readonly connect?: EgressConnector;
  readonly hostAddresses?: readonly string[];
}

/** File name of the egress proxy's Unix socket inside a VM's run dir. */
const EGRESS_SOCKET_NAME = 'egress.sock';

/**
 * Where an attempt stands. The attempt holds exactly one; {@link MOVES} lists the legal
 * transitions and `move()` refuses any other, so no event can act on a stage already left.
 */
type AttemptState =
  /** Writing the ledger entry and the volumes; no VM process yet. */
  | { kind: 'preparing' }
  /** The VMM process runs; the agent has not said hello yet. */
  | { kind: 'booting'; vmStartedAt: number }
  /** The agent said hello and got `start`; `reported` is the last status told to the sink. */
  | { kind: 'connected'; reported: 'booting' | 'building' | 'pushing' }
  /** The outcome is decided (the first decision wins); the VM and its files are going away. */
  | { kind: 'ending' }
  /** The VM is gone and every file removed. */
  | { kind: 'ended' };

type StateKind = AttemptState['kind'];

const MOVES: { readonly [K in StateKind]: readonly StateKind[] } = {
  preparing: ['booting', 'ending'],
  booting: ['connected', 'ending'],
  connected: ['connected', 'ending'],
  ending: ['ended'],
  ended: [],
};

/**
 * One build in one microVM, start to end (docs/architecture.md#a-build-step-by-step, steps 4–8):
 * volumes, VM start, the agent conversation, the outcome, and — whatever happened — the VM killed
 * and every file removed before `run()` resolves. An abort ends it as
 * `{ ok: false, aborted: true }`; naming the failure is the caller's business, since the caller
 * chose the reason.
 */
export class VmBuildAttempt {
  private readonly runDir: string;
  private readonly consoleLogPath: string;
  private readonly logTail = new LogTailBuffer();
  private readonly hostPhaseSeconds: Partial<Record<BuildPhase, number>> = {};
  private currentPhase: { phase: BuildPhase; at: number } | null = null;
  private state: AttemptState = { kind: 'preparing' };
  /** Resources to release in cleanup(), set as they come to exist. */
  private handle: VmHandle | null = null;
  /** The engine build.json asks for ("auto" until the agent picks). */
  private jobEngine: BuildJob['engine'] = 'auto';
  private session: AgentSession | null = null;
  private egressProxy: EgressProxy | null = null;
  private readonly timers: (() => void)[] = [];
  /** The build's cache fork, when it has a scope; committed or discarded once the VM is gone. */
  private cacheFork: CacheDiskFork | null = null;
  /** The agent reported the cache disk synced and unmounted after the engine exited. */
  private cacheSynced = false;
  private readonly outcome: Promise<RunOutcome>;
  private decide: (outcome: RunOutcome | Promise<RunOutcome>) => void = () => undefined;

  constructor(
    private readonly deps: VmBuildAttemptDeps,
    private readonly input: RunInput,
    private readonly sink: BuildRunSink,
    private readonly signal: AbortSignal,
  ) {
    this.runDir = path.join(deps.runRoot, input.build.id);
    this.consoleLogPath = path.join(this.runDir, 'console.log');
    this.outcome = new Promise((resolve) => {
      this.decide = resolve;
    });
  }

  async run(): Promise<RunOutcome> {
    if (this.signal.aborted) {
      // Nothing was created: no VM to kill, no file to remove.
      this.end(this.aborted());
      this.move({ kind: 'ended' });
      return this.outcome;
    }
    this.sink.status('booting');
    this.signal.addEventListener('abort', this.onAbort, { once: true });
    try {
      // Resolves once the VM runs and is watched, or at the first step after an abort cut
      // preparing short; the outcome comes later. Cleanup waits for it, so a VM that is being
      // started is never missed.
      await this.boot();
    } catch (err) {
      this.deps.logger.error(
        { err, buildId: this.input.build.id },
        'starting the builder VM failed',
      );
      this.fail('vm_boot_failed', `starting the builder VM failed: ${(err as Error).message}`);
    }
    let outcome: RunOutcome | undefined;
    let cleanExit = false;
    try {
      outcome = await this.outcome;
      if (outcome.ok && this.cacheFork && this.cacheSynced)
        cleanExit = await this.guestPoweredOff();
    } finally {
      this.signal.removeEventListener('abort', this.onAbort);
      await this.cleanup();
      if (!cleanExit) await this.discardCache();
    }
    // Read once the proxy is closed, so every connection's bytes are counted.
    const withEgress: RunOutcome = { ...outcome, ...this.egressSummary() };
    return cleanExit ? this.withCacheCommit(withEgress) : withEgress;
  }

  /**
   * A cache disk is committed only after the guest, having synced and unmounted it, powered
   * off by itself: waits (bounded) for the VMM to exit instead of killing it.
   */
  private async guestPoweredOff(): Promise<boolean> {
    const handle = this.handle;
    if (!handle) return false;
    let cancel: () => void = () => undefined;
    const timedOut = new Promise<false>((resolve) => {
      cancel = this.deps.scheduler.setTimeout(() => {
        resolve(false);
      }, CACHE_SHUTDOWN_GRACE_MS);
    });
    try {
      return await Promise.race([handle.exited.then(() => true), timedOut]);
    } finally {
      cancel();
    }
  }

  private withCacheCommit(outcome: RunOutcome): RunOutcome {
    const fork = this.cacheFork;
    if (!outcome.ok || !fork) return outcome;
    return { ...outcome, commitCache: () => fork.commit() };
  }

  private async discardCache(): Promise<void> {
    try {
      await this.cacheFork?.discard();
    } catch (err) {
      // Left on disk: the next start removes every fork.
      this.deps.logger.error(
        { err, buildId: this.input.build.id },
        'discarding the cache fork failed',
      );
    }
  }

  private readonly onAbort = (): void => {
    if (!this.live()) return;
    const reason = this.signal.reason as AbortReason | undefined;
    this.session?.send({ type: 'cancel', reason: reason?.kind ?? 'cancel' });
    this.end(this.aborted());
  };

  private async boot(): Promise<void> {
    const { build } = this.input;
    const { deps } = this;
    // The ledger learns of the run dir before it exists, so a crash at any point is reaped.
    await deps.ledger.record({ vmId: build.id, runDir: this.runDir, process: null });
    await rm(this.runDir, { recursive: true, force: true });
    await mkdir(this.runDir, { recursive: true, mode: 0o700 });

    const configPath = path.join(this.runDir, 'config.tar');
    const scratchPath = path.join(this.runDir, 'scratch.img');
    const scope = build.request.cacheScope;
    if (deps.caches && scope !== null) {
      const sizeMb = build.request.cacheSizeMb ?? null;
      this.cacheFork = await deps.caches.fork(
        build.tenant,
        scope,
        build.id,
        sizeMb === null ? null : sizeMb * 1024 ** 2,
      );
      this.sink.log(
        'system',
        `[kiln] cache disk for scope "${scope}": ${this.cacheFork.hit ? 'warm' : 'cold (new disk)'}\n`,
        deps.clock.now(),
      );
    }
    const job = createBuildJob(build, {
      guestRegistryAddress: deps.vmm.guestRegistryAddress,
      guestEgressProxyAddress: deps.vmm.guestEgressProxyAddress,
      limits: deps.limits,
      cache: this.cacheFork ? { gcThresholdPercent: deps.caches?.gcThresholdPercent ?? 80 } : null,
      mirrorUpstreams: deps.mirrorUpstreams,
      buildkitFrontend: deps.buildkitFrontend ?? null,
      ...(deps.layerCompression ? { layerCompression: deps.layerCompression.engines } : {}),
    });
    this.jobEngine = job.engine;
    await writeConfigVolume(configPath, job);
    const egressProxySocket = await this.startEgressProxy();
    await createScratchVolume(scratchPath, deps.scratchBytes);
    await prepareSourceVolume(build.source.path, build.source.sizeBytes);
    if (!this.preparing()) return;

    const vmStartedAt = deps.clock.now().getTime();
    this.sink.mark('vm_start', new Date(vmStartedAt));
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
        ...(this.cacheFork
          ? [{ path: this.cacheFork.path, readOnly: false, serial: DISK_SERIALS.cache }]
          : []),
      ],
      network:
        egressProxySocket === null
          ? { mode: 'isolated', registryTarget: deps.registryTarget }
          : { mode: 'egress', registryTarget: deps.registryTarget, egressProxySocket },
      consoleLogPath: this.consoleLogPath,
    });
    this.handle = handle;
    await this.recordProcess(handle);
    deps.logger.info(
      { buildId: build.id, pid: handle.pid, vmm: deps.vmm.name, accel: deps.vmm.accel },
      'builder VM started',
    );
    // Aborted while the VM was starting: cleanup kills it.
    if (!this.preparing()) return;
    this.sink.mark('boot', deps.clock.now());
    this.move({ kind: 'booting', vmStartedAt });
    this.watch(handle);
  }

  /**
   * For an `egress` build: its filtering proxy, listening on a Unix socket in the run dir
   * that the VM driver forwards the guest's proxy address to. Each refused connection is a
   * `network` log line. Null in isolated mode, which has no proxy at all.
   */
  private async startEgressProxy(): Promise<string | null> {
    const { build } = this.input;
    if (build.request.networkMode !== 'egress') return null;
    const hooks = this.deps.egressHooks ?? {};
    const proxy = createBuildEgressProxy({
      config: this.deps.egress,
      allowedHosts: build.request.allowedHosts ?? undefined,
      clock: this.deps.clock,
      scheduler: this.deps.scheduler,
      logger: this.deps.logger.child({ buildId: build.id, component: 'egress' }),
      onDenied: (denial) => {
        this.sink.log('network', `${denial.message}\n`, denial.at);
      },
      ...hooks,
    });
    this.egressProxy = proxy;
    const socketPath = path.join(this.runDir, EGRESS_SOCKET_NAME);
    await proxy.listen({ path: socketPath });
    return socketPath;
  }

  /** The egress build's traffic so far, for its outcome. */
  private egressSummary(): { egress?: ReturnType<typeof summarizeEgress> } {
    return this.egressProxy === null ? {} : { egress: summarizeEgress(this.egressProxy.stats()) };
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
    this.later(deps.bootTimeoutSeconds * 1000, () => {
      if (this.state.kind === 'booting') {
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
      const decide = () => {
        const how = `code ${String(exit.code)}, signal ${String(exit.signal)}`;
        if (this.state.kind === 'connected') {
          this.fail('agent_lost', `the builder VM exited (${how}) before the build ended`);
        } else {
          this.fail('vm_boot_failed', `the builder VM exited (${how}) before the agent started`);
        }
      };
      // Messages the guest wrote just before the VMM exited may still be in the socket:
      // let the channel drain (its close reports agent_lost) before deciding here.
      if (this.session) this.later(DRAIN_AFTER_EXIT_MS, decide);
      else decide();
    });

    handle.channel().then(
      (stream) => {
        if (!this.live()) {
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
    if (!this.live()) return;
    const connected = this.state.kind === 'connected';
    switch (event.kind) {
      case 'protocol_error':
        this.fail('agent_protocol_error', `agent protocol error: ${event.detail}`);
        return;
      case 'closed':
        if (connected) {
          this.fail('agent_lost', `the agent went away without a result (${event.detail})`);
        } else {
          this.fail('vm_boot_failed', `the agent channel closed before hello (${event.detail})`);
        }
        return;
      case 'message':
        if (connected) this.onMessage(event.message);
        else this.onFirstMessage(event.message);
        return;
    }
  }

  /** While booting only hello is valid; the agent spoke, so its console explains nothing. */
  private onFirstMessage(message: AgentMessage): void {
    if (message.type !== 'hello') {
      this.fail('agent_protocol_error', `the agent sent "${message.type}" before hello`, true);
      return;
    }
    if (message.protocol !== PROTOCOL_VERSION) {
      this.fail(
        'agent_protocol_error',
        `the agent speaks protocol ${message.protocol}, the host ${PROTOCOL_VERSION}`,
        true,
      );
      return;
    }
    if (this.state.kind !== 'booting') return;
    const now = this.deps.clock.now();
    const bootSeconds = (now.getTime() - this.state.vmStartedAt) / 1000;
    this.move({ kind: 'connected', reported: 'booting' });
    this.deps.logger.info({ buildId: this.input.build.id, bootSeconds }, 'guest agent connected');
    this.sink.mark('agent', now);
    if (!this.live()) return;
    this.noteLayerCompression(message.engines);
    this.session?.send({
      type: 'start',
      registryToken: this.input.registryToken,
      secrets: this.input.secrets,
    });
  }

  /**
   * Logs the host's reason when the engine that will run pushes layers other than configured
   * (Buildah and `none`): the engine the agent picks for the job among the guest's.
   */
  private noteLayerCompression(guestEngines: readonly string[]): void {
    const engine = pickEngineName(this.jobEngine, guestEngines);
    const notes = this.deps.layerCompression?.notes ?? {};
    const note = engine === 'buildah' || engine === 'buildkit' ? notes[engine] : undefined;
    if (note !== undefined) this.sink.log('system', `[kiln] ${note}\n`, this.deps.clock.now());
  }

  private onMessage(message: AgentMessage): void {
    switch (message.type) {
      case 'hello':
        this.fail('agent_protocol_error', 'the agent said hello twice');
        return;
      case 'phase':
        this.onPhase(message.phase);
        return;
      case 'log':
        this.logTail.push(message.data);
        this.sink.log(message.stream, message.data, new Date(message.at));
        return;
      case 'result': {
        this.closePhase();
        const phaseSeconds = { ...this.hostPhaseSeconds, ...message.phaseSeconds };
        if (message.ok) {
          this.cacheSynced = message.cacheSynced === true;
          this.end({
            ok: true,
            imageDigest: message.imageDigest,
            pushedRef: `${this.input.build.repository}:${this.input.build.id}`,
            provenance: message.provenance,
            phaseSeconds,
          });
        } else {
          const code: BuildErrorCode = isBuildErrorCode(message.code)
            ? message.code
            : 'build_failed';
          this.end({
            ok: false,
            code,
            message: message.message,
            logTail: message.logTail.length > 0 ? message.logTail : this.logTail.tail(),
            phaseSeconds,
          });
        }
        return;
      }
    }
  }

  private onPhase(phase: BuildPhase): void {
    if (this.state.kind !== 'connected') return;
    this.closePhase();
    this.currentPhase = { phase, at: this.deps.clock.now().getTime() };
    // The first phase means building; pushing is reported once, and never undone. The state
    // moves before the sink hears of it, so whatever the sink sets off sees the new state.
    const { reported } = this.state;
    const next = phase === 'pushing' || reported === 'pushing' ? 'pushing' : 'building';
    if (next !== reported) this.move({ ...this.state, reported: next });
    this.sink.phase(phase);
    if (reported === 'booting') this.sink.status('building');
    if (next === 'pushing' && reported !== 'pushing') this.sink.status('pushing');
  }

  private closePhase(): void {
    if (!this.currentPhase) return;
    const seconds = (this.deps.clock.now().getTime() - this.currentPhase.at) / 1000;
    this.hostPhaseSeconds[this.currentPhase.phase] = seconds;
    this.currentPhase = null;
  }

  /** False once an abort (or a failure) decided the outcome while the VM was being set up. */
  private preparing(): boolean {
    return this.state.kind === 'preparing';
  }

  /** True until the outcome is decided. */
  private live(): boolean {
    return this.state.kind !== 'ending' && this.state.kind !== 'ended';
  }

  private move(next: AttemptState): void {
    if (!MOVES[this.state.kind].includes(next.kind)) {
      throw new Error(`VmBuildAttempt: illegal move from ${this.state.kind} to ${next.kind}`);
    }
    this.state = next;
  }

  /** Decides the outcome (the first decision wins) and moves to `ending`. */
  private end(outcome: RunOutcome | Promise<RunOutcome>): void {
    if (!this.live()) return;
    this.move({ kind: 'ending' });
    this.sink.mark('teardown', this.deps.clock.now());
    this.decide(outcome);
  }

  private later(ms: number, fn: () => void): void {
    if (!this.live()) return;
    this.timers.push(this.deps.scheduler.setTimeout(fn, ms));
  }

  private aborted(): RunOutcome {
    this.closePhase();
    return {
      ok: false,
      aborted: true,
      logTail: this.logTail.tail(),
      phaseSeconds: { ...this.hostPhaseSeconds },
    };
  }

  /**
   * Ends the attempt with a failure. Unless the agent spoke (it said hello, or sent something
   * else first), the serial console's last lines are added to the log tail: they explain why.
   */
  private fail(
    code: BuildErrorCode,
    message: string,
    agentSpoke = this.state.kind === 'connected',
  ): void {
    if (!this.live()) return;
    this.closePhase();
    const failure = {
      ok: false as const,
      code,
      message,
      logTail: this.logTail.tail(),
      phaseSeconds: { ...this.hostPhaseSeconds },
    };
    this.end(agentSpoke ? failure : this.withConsoleTail(failure));
  }

  private async withConsoleTail<T extends { logTail: string[] }>(failure: T): Promise<T> {
    const consoleTail = await readConsoleTail(this.consoleLogPath, CONSOLE_TAIL_LINES);
    if (consoleTail.length === 0) return failure;
    this.sink.log('system', `${consoleTail.join('\n')}\n`, this.deps.clock.now());
    return {
      ...failure,
      logTail: [...failure.logTail, '--- builder VM console ---', ...consoleTail],
    };
  }

  /**
   * Always runs: kill the VM, close the channel and the egress proxy, delete the run dir and
   * the ledger entry.
   */
  private async cleanup(): Promise<void> {
    for (const cancel of this.timers.splice(0)) cancel();
    this.session?.close();
    const { handle, egressProxy } = this;
    if (handle) await this.tryStep('killing the builder VM', () => handle.kill());
    if (egressProxy) await this.tryStep('closing the egress proxy', () => egressProxy.close());
    // Left in the ledger when it fails: the next recover() retries.
    await this.tryStep('removing the run dir', async () => {
      await rm(this.runDir, { recursive: true, force: true });
      await this.deps.ledger.remove(this.input.build.id);
    });
    this.move({ kind: 'ended' });
  }

  /** One cleanup step: a failure is logged and the next step still runs. */
  private async tryStep(what: string, step: () => Promise<unknown>): Promise<void> {
    try {
      await step();
    } catch (err) {
      this.deps.logger.error({ err, buildId: this.input.build.id }, `${what} failed`);
    }
  }
}
