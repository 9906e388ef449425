import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { BuildErrorCode } from './build-error-code.js';
import { BuildQueue } from './build-queue.js';
import type { AbortReason, BuildRunner, BuildRunSink, RunOutcome } from './build-runner.js';
import type { BuildPage, BuildStore } from './build-store.js';
import type { BuildActivity, BuildTokenIssuer } from './build-token-issuer.js';
import { TERMINAL_STATUSES, type Build, type BuildStatus } from './build.js';
import type { EventLog } from './event-log.js';
import type { SecretStore } from '../auth/secret-store.js';
import { AppError } from '../errors/app-error.js';
import type { BuildPhase, LogStream } from '../protocol/agent-messages.js';
import type { KilnMetrics } from '../telemetry/kiln-metrics.js';
import type { Clock } from '../time/clock.js';
import type { Scheduler } from '../time/scheduler.js';

/** Queue and lifecycle policy (config.builds plus the public URL). */
export interface BuildManagerPolicy {
  maxConcurrent: number;
  maxRunningPerTenant: number;
  maxQueuedPerTenant: number;
  queueTimeoutSeconds: number;
  /** config.server.publicUrl; its host prefixes the image_ref of ready builds. */
  publicUrl: string;
}

export interface BuildManagerOptions {
  store: BuildStore;
  events: EventLog;
  runner: BuildRunner;
  tokenIssuer: BuildTokenIssuer;
  secrets: SecretStore;
  metrics: KilnMetrics;
  policy: BuildManagerPolicy;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
}

/** A build as the API shows it: while queued, with its place in the queue. */
export interface BuildView {
  build: Build;
  queuePosition: number | null;
}

interface Running {
  build: Build;
  controller: AbortController;
  done: Promise<void>;
  cancelTimeout: () => void;
}

/** Statuses of a build handed to a runner. */
const RUNNING_STATUSES: readonly BuildStatus[] = ['booting', 'building', 'pushing'];
/** A build is handed to a runner at most this many times (a restart re-runs it once). */
const MAX_ATTEMPTS = 2;

/**
 * The build lifecycle: accepts builds into the fair queue, hands them to the runner within the
 * concurrency limits, turns the runner's reports into stored statuses and events, applies
 * cancel, queue timeout and build timeout, and recovers after a restart. It is the registry's
 * BuildActivity: a build's token works only while the build is not terminal.
 */
export class BuildManager implements BuildActivity {
  private readonly queue: BuildQueue;
  private readonly queued = new Map<string, Build>();
  /** When each waiting build entered the queue (ms), for the queue timeout. */
  private readonly queuedSince = new Map<string, number>();
  private readonly running = new Map<string, Running>();
  private state: 'new' | 'starting' | 'ready' | 'closing' | 'closed' = 'new';
  private closePromise: Promise<void> | null = null;

  constructor(private readonly o: BuildManagerOptions) {
    if (!Number.isInteger(o.policy.queueTimeoutSeconds) || o.policy.queueTimeoutSeconds < 1) {
      throw new RangeError('queueTimeoutSeconds must be a positive whole number');
    }
    this.queue = new BuildQueue({
      maxConcurrent: o.policy.maxConcurrent,
      maxRunningPerTenant: o.policy.maxRunningPerTenant,
    });
    o.metrics.observeQueue({
      queued: () => this.queue.length,
      active: () => this.running.size,
    });
  }

  /** True once recovery is done and builds are being accepted. */
  get ready(): boolean {
    return this.state === 'ready';
  }

  get queuedCount(): number {
    return this.queue.length;
  }

  /**
   * Recovery, once: the runner reaps what a crashed daemon left; builds that were running are
   * re-queued once (or fail `daemon_restarted`); queued builds are re-queued in order.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('BuildManager.start() called twice');
    this.state = 'starting';
    const report = await this.o.runner.recover();
    this.o.logger.info({ ...report }, 'runner recovery done');
    for (const status of RUNNING_STATUSES) {
      for (const build of this.o.store.listByStatus(status)) {
        if (build.attempts < MAX_ATTEMPTS) {
          build.status = 'queued';
          this.o.store.update(build);
          this.o.events.append(build.id, { type: 'status', status: 'queued' });
          this.o.events.appendLog(build.id, {
            type: 'log',
            stream: 'system',
            data: '[kiln] the daemon restarted during this build; it was queued again\n',
            at: this.o.clock.now().toISOString(),
          });
        } else {
          this.finish(build, {
            status: 'failed',
            failure: {
              code: 'daemon_restarted',
              message: 'The daemon restarted while this build was running, twice.',
              logTail: this.logTail(build.id),
            },
          });
        }
      }
    }
    for (const build of this.o.store.listByStatus('queued')) this.enqueue(build);
    this.state = 'ready';
    this.pump();
  }

  /** Throws TENANT_QUEUE_FULL when the tenant may not queue another build now. */
  assertCanQueue(tenant: string): void {
    if (this.state !== 'ready') throw new AppError('SHUTTING_DOWN');
    const cap = this.o.policy.maxQueuedPerTenant;
    if (cap > 0 && this.queue.queuedFor(tenant) >= cap) {
      throw new AppError('TENANT_QUEUE_FULL', undefined, { details: { limit: cap } });
    }
  }

  /** Stores a new (queued) build, its first event, and queues it. */
  submit(build: Build): void {
    this.assertCanQueue(build.tenant);
    if (build.status !== 'queued') throw new Error('submitted builds must be queued');
    this.o.store.insert(build);
    this.o.events.append(build.id, { type: 'status', status: 'queued' });
    this.enqueue(build);
    this.pump();
  }

  /** A tenant's build; BUILD_NOT_FOUND for unknown ids and for other tenants' builds. */
  get(tenant: string, id: string): BuildView {
    const build = this.running.get(id)?.build ?? this.queued.get(id) ?? this.o.store.get(id);
    if (build?.tenant !== tenant) throw new AppError('BUILD_NOT_FOUND');
    return { build, queuePosition: build.status === 'queued' ? this.queue.position(id) : null };
  }

  list(options: {
    tenant: string;
    status?: BuildStatus | undefined;
    limit: number;
    cursor?: string | undefined;
  }): BuildPage {
    return this.o.store.list(options);
  }

  /**
   * Cancels a build (idempotent). A queued build ends `cancelled` at once; a running one is
   * aborted and ends `cancelled` only once the runner resolved (its VM is gone).
   */
  cancel(tenant: string, id: string): BuildView {
    const view = this.get(tenant, id);
    const build = view.build;
    if (TERMINAL_STATUSES.has(build.status)) return view;
    if (this.queue.remove(id)) {
      this.queued.delete(id);
      this.queuedSince.delete(id);
      this.finish(build, {
        status: 'cancelled',
        failure: { code: 'cancelled', message: 'Cancelled before it started.', logTail: [] },
      });
      return { build, queuePosition: null };
    }
    const running = this.running.get(id);
    if (running && !running.controller.signal.aborted) {
      this.abort(running, { kind: 'cancel' });
    }
    return { build: running?.build ?? build, queuePosition: null };
  }

  isBuildActive(buildId: string): boolean {
    return this.running.has(buildId) || this.queued.has(buildId);
  }

  /** Fails every build that has waited longer than the queue timeout. Called periodically. */
  sweepQueueTimeouts(): number {
    const limitMs = this.o.policy.queueTimeoutSeconds * 1000;
    const now = this.o.clock.now().getTime();
    let failed = 0;
    for (const build of [...this.queued.values()]) {
      const since = this.queuedSince.get(build.id) ?? build.createdAt.getTime();
      if (now - since < limitMs) continue;
      if (!this.queue.remove(build.id)) continue;
      this.queued.delete(build.id);
      this.queuedSince.delete(build.id);
      this.finish(build, {
        status: 'failed',
        failure: {
          code: 'queue_timeout',
          message: `The build waited more than ${this.o.policy.queueTimeoutSeconds} s in the queue.`,
          logTail: [],
        },
      });
      failed += 1;
    }
    return failed;
  }

  /**
   * Stops taking work and aborts running builds with reason `shutdown`, waiting for every
   * run() to resolve (VMs gone). Their status stays as it was, so the next start re-queues
   * them once; queued builds stay queued. Safe to call twice.
   */
  close(): Promise<void> {
    this.closePromise ??= (async () => {
      this.state = 'closing';
      for (const running of this.running.values()) this.abort(running, { kind: 'shutdown' });
      await Promise.all([...this.running.values()].map((r) => r.done));
      this.state = 'closed';
    })();
    return this.closePromise;
  }

  private enqueue(build: Build): void {
    this.queued.set(build.id, build);
    this.queuedSince.set(build.id, this.o.clock.now().getTime());
    this.queue.enqueue({ id: build.id, tenant: build.tenant });
  }

  private abort(running: Running, reason: AbortReason): void {
    running.cancelTimeout();
    running.controller.abort(reason);
  }

  private pump(): void {
    if (this.state !== 'ready') return;
    for (;;) {
      const entry = this.queue.next();
      if (!entry) return;
      const build = this.queued.get(entry.id);
      this.queued.delete(entry.id);
      this.queuedSince.delete(entry.id);
      if (!build) {
        this.queue.finished(entry.tenant);
        continue;
      }
      this.launch(build);
    }
  }

  private launch(build: Build): void {
    const now = this.o.clock.now();
    build.startedAt = now;
    build.attempts += 1;
    build.timings.queued = (now.getTime() - build.createdAt.getTime()) / 1000;
    this.o.store.update(build);
    const controller = new AbortController();
    const timeoutSeconds = build.request.timeoutSeconds;
    const running: Running = {
      build,
      controller,
      done: Promise.resolve(),
      cancelTimeout: () => undefined,
    };
    running.cancelTimeout = this.o.scheduler.setTimeout(() => {
      if (!controller.signal.aborted)
        controller.abort({ kind: 'timeout', seconds: timeoutSeconds });
    }, timeoutSeconds * 1000);
    this.running.set(build.id, running);
    running.done = this.run(running).finally(() => {
      running.cancelTimeout();
      this.running.delete(build.id);
      this.queue.finished(build.tenant);
      this.pump();
    });
  }

  private async run(running: Running): Promise<void> {
    const { build, controller } = running;
    const log = this.o.logger.child({ buildId: build.id, tenant: build.tenant });
    let outcome: RunOutcome;
    try {
      const secrets = this.o.secrets.values(build.tenant, build.request.secretIds);
      const registryToken = await this.o.tokenIssuer.issueBuildToken(build);
      // Aborted while the token was being issued: no VM was started, nothing to kill.
      outcome = controller.signal.aborted
        ? {
            ok: false,
            code: 'cancelled',
            message: 'Aborted before the VM started.',
            logTail: [],
            phaseSeconds: {},
            bootSeconds: null,
          }
        : await this.o.runner.run(
            { build, registryToken, secrets },
            this.sink(build),
            controller.signal,
          );
    } catch (err) {
      log.error({ err }, 'build run failed unexpectedly');
      outcome = {
        ok: false,
        code: 'internal',
        message: 'The build could not be run (internal error).',
        logTail: this.logTail(build.id),
        phaseSeconds: {},
        bootSeconds: null,
      };
    }
    const reason = controller.signal.aborted ? (controller.signal.reason as AbortReason) : null;
    if (reason?.kind === 'shutdown' && !outcome.ok) {
      this.o.events.appendLog(build.id, {
        type: 'log',
        stream: 'system',
        data: '[kiln] the daemon is shutting down; this build will run again after restart\n',
        at: this.o.clock.now().toISOString(),
      });
      log.info('build interrupted by shutdown');
      return;
    }
    Object.assign(build.timings, outcome.phaseSeconds);
    if (outcome.bootSeconds !== null) build.timings.boot = outcome.bootSeconds;
    if (outcome.ok) {
      this.finish(build, {
        status: 'ready',
        result: {
          imageRef: `${new URL(this.o.policy.publicUrl).host}/${outcome.pushedRef}`,
          imageDigest: outcome.imageDigest,
          provenance: outcome.provenance,
        },
      });
    } else if (reason?.kind === 'cancel') {
      this.finish(build, {
        status: 'cancelled',
        failure: {
          code: 'cancelled',
          message: 'Cancelled by the client.',
          logTail: outcome.logTail,
        },
      });
    } else {
      const code: BuildErrorCode = reason?.kind === 'timeout' ? 'timeout' : outcome.code;
      const message =
        reason?.kind === 'timeout'
          ? `The build exceeded its timeout of ${reason.seconds} s.`
          : outcome.message;
      this.finish(build, {
        status: 'failed',
        failure: { code, message, logTail: outcome.logTail },
      });
    }
    log.info({ status: build.status }, 'build finished');
  }

  private sink(build: Build): BuildRunSink {
    return {
      status: (status) => {
        if (TERMINAL_STATUSES.has(build.status) || build.status === status) return;
        build.status = status;
        this.o.store.update(build);
        this.o.events.append(build.id, { type: 'status', status });
      },
      phase: (phase: BuildPhase) => {
        this.o.events.append(build.id, { type: 'phase', phase });
      },
      log: (stream: LogStream, data: string, at: Date) => {
        this.o.events.appendLog(build.id, { type: 'log', stream, data, at: at.toISOString() });
      },
      vmBooted: (seconds: number) => {
        build.timings.boot = seconds;
        this.o.metrics.vmBooted(seconds);
      },
    };
  }

  private finish(
    build: Build,
    end:
      | { status: 'ready'; result: NonNullable<Build['result']> }
      | { status: 'failed' | 'cancelled'; failure: NonNullable<Build['failure']> },
  ): void {
    const now = this.o.clock.now();
    build.status = end.status;
    build.finishedAt = now;
    build.result = end.status === 'ready' ? end.result : null;
    build.failure = end.status === 'ready' ? null : end.failure;
    const total = (now.getTime() - build.createdAt.getTime()) / 1000;
    build.timings.total = total;
    this.o.store.update(build);
    this.o.events.append(build.id, { type: 'status', status: end.status });
    this.o.events.append(build.id, {
      type: 'result',
      status: end.status,
      result: build.result,
      failure: build.failure,
    });
    this.o.metrics.buildFinished(end.status, total);
    // The upload was only ever needed as this build's source volume; nothing re-runs a
    // terminal build, so its disk space goes back now (the digest stays on the build).
    rm(path.dirname(build.source.path), { recursive: true, force: true }).catch((err: unknown) => {
      this.o.logger.warn({ err, buildId: build.id }, 'could not remove the build source');
    });
  }

  private logTail(buildId: string): string[] {
    return this.o.store
      .lastLogEvents(buildId, 20)
      .flatMap((e) => (e.data.type === 'log' ? e.data.data.split('\n') : []))
      .filter((line) => line !== '')
      .slice(-20);
  }
}
