import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { BuildDirs } from './build-dirs.js';
import type { BuildLogStream } from './build-event.js';
import { newBuildId } from './build-id.js';
import { BuildQueue } from './build-queue.js';
import { buildReferences, cacheRepository, outputRepository } from './build-repositories.js';
import { parseBuildRequest, type BuildRequestPolicy } from './build-request-parser.js';
import type { AbortReason, BuildRunner, BuildRunSink, RunOutcome } from './build-runner.js';
import type { BuildPage, BuildStore } from './build-store.js';
import {
  attachGuestSeconds,
  lastMarkOf,
  markInterrupted,
  markPhase,
  newTimeline,
  notePhaseArrival,
  type AfterFinishStep,
} from './build-timeline.js';
import type { BuildActivity, BuildTokenIssuer } from './build-token-issuer.js';
import {
  TERMINAL_STATUSES,
  type Build,
  type BuildFailure,
  type BuildRequest,
  type BuildStatus,
} from './build.js';
import type { EventLog } from './event-log.js';
import { registryAccount } from './registry-account.js';
import { accountTime } from './time-account.js';
import type { UploadReceiver } from './upload-receiver.js';
import type { BuildPhase } from '../../common/protocol/agent-messages.js';
import type { Clock } from '../../common/time/clock.js';
import type { SecretStore } from '../auth/secret-store.js';
import type { EgressConfig } from '../config/egress-config.js';
import { buildAllowlist } from '../egress/build-allowlist.js';
import { hostsContacted } from '../egress/egress-summary.js';
import { AppError } from '../errors/app-error.js';
import type { BuildRegistryRecord } from '../registry/build-registry-record.js';
import type { BaseImageFailure } from '../registry/mirror/base-image-failures.js';
import type { KilnMetrics } from '../telemetry/kiln-metrics.js';
import type { Scheduler } from '../time/scheduler.js';

/** Queue, request and lifecycle policy (config.builds plus the public URL). */
export interface BuildManagerPolicy extends BuildRequestPolicy {
  maxConcurrent: number;
  maxRunningPerTenant: number;
  maxQueuedPerTenant: number;
  queueTimeoutSeconds: number;
  /** config.server.publicUrl; its host prefixes the image_ref of ready builds. */
  publicUrl: string;
}

export interface BuildManagerOptions {
  /** config.server.dataDir: uploads live in its `builds/` folder, owned by the manager. */
  dataDir: string;
  store: BuildStore;
  events: EventLog;
  runner: BuildRunner;
  tokenIssuer: BuildTokenIssuer;
  secrets: SecretStore;
  metrics: KilnMetrics;
  policy: BuildManagerPolicy;
  /** The operator's egress settings: an `egress` build's allowed_hosts is checked against them. */
  egress: EgressConfig;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  /**
   * The registry's record of base images it could not serve to a build. When a build's engine
   * fails and the registry saw one of its base-image pulls fail, the build ends
   * `base_image_unavailable` with the registry's reason. Absent when no registry serves the
   * builds (tests of the manager alone).
   */
  baseImageFailures?: { take(buildId: string): BaseImageFailure | null };
  /**
   * The registry's record of what it served to and received from each build's token. A ready
   * build's result takes its pushed digest from it and lists the base images it shows,
   * noting where the agent's report disagrees. Absent when no registry serves the builds.
   */
  registryRecord?: Pick<BuildRegistryRecord, 'of' | 'forget'>;
  /** Told of every stored status change (the webhook dispatcher); optional. */
  statusListener?: BuildStatusListener;
}

/** Hears each status a build reaches, once it is stored. Must not throw for a build's sake. */
export interface BuildStatusListener {
  buildChanged(build: Build): void;
}

/** A build as the API shows it: while queued, with its place in the queue. */
export interface BuildView {
  build: Build;
  queuePosition: number | null;
}

/** A build waiting in the queue, with when it entered it (ms), for the queue timeout. */
interface Queued {
  id: string;
  tenant: string;
  build: Build;
  since: number;
}

interface Running {
  build: Build;
  /**
   * This run's id, named in its registry token: only the running attempt's token is accepted,
   * so a re-run (after a restart too, when nothing is running yet) refuses every earlier one.
   */
  attemptId: string;
  controller: AbortController;
  done: Promise<void>;
  cancelTimeout: () => void;
}

/** Statuses of a build handed to a runner. */
const RUNNING_STATUSES: readonly BuildStatus[] = ['booting', 'building', 'pushing'];
/** A build is handed to a runner at most this many times (a restart re-runs it once). */
const MAX_ATTEMPTS = 2;

/**
 * The build lifecycle, from upload to removal: accepts builds (their directory, their checks,
 * their row) into the fair queue, hands them to the runner within the concurrency limits,
 * turns the runner's reports into stored statuses and events, applies cancel, queue timeout
 * and build timeout, removes a build's files once it is terminal, and recovers after a
 * restart. It is the registry's BuildActivity: a build's token works only while the attempt
 * it was issued for is the one running.
 */
export class BuildManager implements BuildActivity {
  private readonly dirs: BuildDirs;
  private readonly queue: BuildQueue<Queued>;
  private readonly running = new Map<string, Running>();
  /**
   * Per-build secret values (build id → id → value), held here and nowhere else from the
   * upload until the build is terminal: never in SQLite, build.json or a log.
   */
  private readonly buildSecrets = new Map<string, Record<string, string>>();
  /** Steps after terminal statuses (cache commit, source removal) still under way. */
  private readonly afterFinishing = new Set<Promise<void>>();
  private state: 'new' | 'starting' | 'ready' | 'closing' | 'closed' = 'new';
  private closePromise: Promise<void> | null = null;

  constructor(private readonly o: BuildManagerOptions) {
    if (!Number.isInteger(o.policy.queueTimeoutSeconds) || o.policy.queueTimeoutSeconds < 1) {
      throw new RangeError('queueTimeoutSeconds must be a positive whole number');
    }
    this.dirs = new BuildDirs(o.dataDir);
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
   * Recovery, once: the runner reaps what a crashed daemon left; build directories without a
   * live build (an upload cut off by a crash, a removal that did not happen) are removed;
   * builds that were running are re-queued once (or fail `daemon_restarted`); queued builds
   * are re-queued in order. Uploads are refused until it is done.
   */
  async start(): Promise<void> {
    if (this.state !== 'new') throw new Error('BuildManager.start() called twice');
    this.state = 'starting';
    const report = await this.o.runner.recover();
    this.o.logger.info({ ...report }, 'runner recovery done');
    const removed = await this.dirs.removeAllExcept((id) => {
      const build = this.o.store.get(id);
      return build !== null && !TERMINAL_STATUSES.has(build.status);
    });
    if (removed > 0) this.o.logger.info({ removed }, 'removed interrupted uploads');
    for (const status of [...RUNNING_STATUSES, 'queued' as const]) {
      for (const build of this.o.store.listByStatus(status)) {
        if ((build.request.buildSecretIds ?? []).length > 0) {
          if (status !== 'queued') this.interrupted(build);
          // Their values were only ever in the previous process's memory.
          void this.finish(build, {
            status: 'failed',
            failure: {
              code: 'build_secrets_lost',
              message:
                'The daemon restarted before this build ended; its per-build secrets were held only in memory. Submit the build again.',
              logTail: this.logTail(build.id),
            },
          });
        }
      }
    }
    for (const status of RUNNING_STATUSES) {
      for (const build of this.o.store.listByStatus(status)) {
        this.interrupted(build);
        if (build.attempts < MAX_ATTEMPTS) {
          build.status = 'queued';
          markPhase(build.timings, 'queued', this.o.clock.now().getTime());
          this.o.events.appendWithUpdate(build, [{ type: 'status', status: 'queued' }]);
          this.o.events.appendLog(build.id, {
            type: 'log',
            stream: 'system',
            data: '[kiln] the daemon restarted during this build; it was queued again\n',
            at: this.o.clock.now().toISOString(),
          });
        } else {
          void this.finish(build, {
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

  /**
   * Accepts one upload as a new queued build: gives `receive` a fresh directory to stream the
   * source into and a check for each field as it arrives, then validates the request as a
   * whole (source digest, secrets), stores the build and queues it. On any refusal or
   * interruption the directory is removed and nothing is stored; the AppError is rethrown.
   */
  async accept(tenant: string, receive: UploadReceiver): Promise<BuildView> {
    const uploadStartedAt = this.o.clock.now().getTime();
    this.assertCanQueue(tenant);
    const id = newBuildId();
    const partialPath = await this.dirs.create(id);
    let build: Build;
    let buildSecrets: ReadonlyMap<string, string> = new Map();
    // Seen so far during the upload, to refuse a clash the moment its second half arrives.
    const early = { storedIds: [] as readonly string[], buildSecretIds: new Set<string>() };
    try {
      const upload = await receive({
        partialPath,
        checkField: (name, value) => {
          const { request } = parseBuildRequest(new Map([[name, value]]), this.o.policy, {
            fieldOnly: true,
          });
          this.assertSecretsExist(tenant, request.secretIds);
          if (name === 'secrets') {
            early.storedIds = request.secretIds;
            assertNoSecretClash(request.secretIds, early.buildSecretIds);
          }
        },
        checkBuildSecret: (secretId) => {
          early.buildSecretIds.add(secretId);
          assertNoSecretClash(early.storedIds, early.buildSecretIds);
        },
      });
      buildSecrets = upload.secrets;
      const parsed = parseBuildRequest(upload.fields, this.o.policy);
      const { sourceSha256 } = parsed;
      assertNoSecretClash(parsed.request.secretIds, buildSecrets);
      const withHosts = this.withAllowedHosts(parsed.request);
      const request =
        buildSecrets.size > 0
          ? { ...withHosts, buildSecretIds: [...buildSecrets.keys()] }
          : withHosts;
      if (sourceSha256 !== null && sourceSha256 !== upload.source.sha256) {
        throw new AppError('SOURCE_SHA256_MISMATCH', undefined, {
          details: { expected: sourceSha256, actual: upload.source.sha256 },
        });
      }
      this.assertSecretsExist(tenant, request.secretIds);
      const sourcePath = await this.dirs.commit(id);
      // Checked again: the queue may have filled, or shutdown begun, during the upload.
      this.assertCanQueue(tenant);
      const createdAt = this.o.clock.now();
      build = {
        id,
        tenant,
        status: 'queued',
        request,
        source: { path: sourcePath, ...upload.source },
        repository: outputRepository(tenant, id, request),
        cacheRepository: cacheRepository(tenant, request.cacheScope),
        createdAt,
        startedAt: null,
        finishedAt: null,
        attempts: 0,
        result: null,
        failure: null,
        timings: newTimeline(uploadStartedAt, createdAt.getTime()),
      };
    } catch (err) {
      await this.dirs.remove(id);
      throw err;
    }
    if (buildSecrets.size > 0) this.buildSecrets.set(id, Object.fromEntries(buildSecrets));
    this.o.events.appendWithInsert(build, [{ type: 'status', status: 'queued' }]);
    this.enqueue(build);
    this.o.metrics.uploadAccepted(build.source.sizeBytes);
    this.pump();
    return this.get(tenant, id);
  }

  /** A tenant's build; BUILD_NOT_FOUND for unknown ids and for other tenants' builds. */
  get(tenant: string, id: string): BuildView {
    const build = this.running.get(id)?.build ?? this.queue.get(id)?.build ?? this.o.store.get(id);
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
      void this.finish(build, {
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
    return this.running.has(buildId) || this.queue.has(buildId);
  }

  isAttemptRunning(buildId: string, attemptId: string): boolean {
    return this.running.get(buildId)?.attemptId === attemptId;
  }

  /** Fails every build that has waited longer than the queue timeout. Called periodically. */
  sweepQueueTimeouts(): number {
    const limitMs = this.o.policy.queueTimeoutSeconds * 1000;
    const now = this.o.clock.now().getTime();
    let failed = 0;
    for (const { id, since } of this.queue.entries()) {
      if (now - since < limitMs) continue;
      const build = this.queue.remove(id)?.build;
      if (!build) continue;
      void this.finish(build, {
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
      await Promise.all([...this.afterFinishing]);
      this.state = 'closed';
    })();
    return this.closePromise;
  }

  private enqueue(build: Build): void {
    this.queue.enqueue({
      id: build.id,
      tenant: build.tenant,
      build,
      since: this.o.clock.now().getTime(),
    });
  }

  /** UNKNOWN_SECRET for the first id the tenant has no secret under. */
  private assertSecretsExist(tenant: string, secretIds: readonly string[]): void {
    for (const secretId of secretIds) {
      if (!this.o.secrets.has(tenant, secretId)) {
        throw new AppError('UNKNOWN_SECRET', `Secret ${JSON.stringify(secretId)} does not exist.`, {
          details: { secret: secretId },
        });
      }
    }
  }

  private abort(running: Running, reason: AbortReason): void {
    running.cancelTimeout();
    running.controller.abort(reason);
  }

  private pump(): void {
    if (this.state !== 'ready') return;
    for (let entry = this.queue.next(); entry; entry = this.queue.next()) {
      this.launch(entry.build);
    }
  }

  private launch(build: Build): void {
    const now = this.o.clock.now();
    // Leaving the queue is the moment the build starts: its status, start time and attempt
    // count change together, so no view shows a "queued" build that has started. The runner's
    // own `booting` report is then a no-op.
    build.status = 'booting';
    build.startedAt = now;
    build.attempts += 1;
    markPhase(build.timings, 'token', now.getTime());
    this.o.events.appendWithUpdate(build, [{ type: 'status', status: 'booting' }]);
    const controller = new AbortController();
    const timeoutSeconds = build.request.timeoutSeconds;
    const running: Running = {
      build,
      attemptId: randomUUID(),
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
    // The run goes on in a later turn of the event loop. A run that ends at once (a runner
    // failing fast, the benchmark's stand-in) is otherwise followed by the next launch within
    // the same chain of promise reactions, and a drained queue holds every request off.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      const secrets = {
        ...this.o.secrets.values(build.tenant, build.request.secretIds),
        ...this.buildSecrets.get(build.id),
      };
      const registryToken = await this.o.tokenIssuer.issueBuildToken(build, running.attemptId);
      markPhase(build.timings, 'prepare', this.o.clock.now().getTime());
      // Aborted while the token was being issued: no VM was started, nothing to kill.
      outcome = controller.signal.aborted
        ? { ok: false, aborted: true, logTail: [], phaseSeconds: {} }
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
      };
    }
    attachGuestSeconds(build.timings, outcome.phaseSeconds);
    const observed = this.o.registryRecord?.of(build.id) ?? null;
    this.o.registryRecord?.forget(build.id);
    if (outcome.ok) {
      const account = observed === null ? undefined : registryAccount(build, outcome, observed);
      if (account !== undefined && account.disagreements.length > 0) {
        log.warn(
          { disagreements: account.disagreements },
          'agent report disagrees with the registry',
        );
      }
      const registryHost = new URL(this.o.policy.publicUrl).host;
      const committed = this.finish(
        build,
        {
          status: 'ready',
          result: {
            imageRef: `${registryHost}/${outcome.pushedRef}`,
            imageRefs: buildReferences(build).map(
              (r) => `${registryHost}/${r.repository}:${r.tag}`,
            ),
            // The digest the registry accepted wins over the one the agent reports.
            imageDigest: account?.pushedDigest ?? outcome.imageDigest,
            provenance:
              outcome.egress === undefined
                ? outcome.provenance
                : { ...outcome.provenance, hostsContacted: hostsContacted(outcome.egress) },
            ...(outcome.egress === undefined ? {} : { egress: outcome.egress }),
            ...(account === undefined ? {} : { registry: account }),
          },
        },
        outcome.commitCache,
      );
      log.info({ status: build.status }, 'build finished');
      // The run holds its slot until the cache disk is committed, as the next build of the
      // scope must fork the new disk.
      await committed;
      return;
    }
    const baseImage = this.o.baseImageFailures?.take(build.id) ?? null;
    if (!controller.signal.aborted && !('aborted' in outcome)) {
      // The engine only knows its pull failed; the registry knows which image and why.
      const failure =
        outcome.code === 'build_failed' && baseImage !== null
          ? {
              code: 'base_image_unavailable' as const,
              message: `Base image ${baseImage.image} is unavailable (${baseImage.cause.replaceAll('_', ' ')}): ${baseImage.message}`,
            }
          : { code: outcome.code, message: outcome.message };
      void this.finish(build, {
        status: 'failed',
        failure: {
          ...failure,
          logTail: outcome.logTail,
          ...(outcome.egress === undefined ? {} : { egress: outcome.egress }),
        },
      });
      log.info({ status: build.status }, 'build finished');
      return;
    }
    // Aborted by the manager (the reason says why), or by a runner that is closing.
    const reason: AbortReason = controller.signal.aborted
      ? (controller.signal.reason as AbortReason)
      : { kind: 'shutdown' };
    const end = abortedEnd(reason, outcome.logTail);
    if (end === null) {
      markInterrupted(build.timings, this.o.clock.now().getTime(), false);
      this.o.store.update(build);
      this.o.events.appendLog(build.id, {
        type: 'log',
        stream: 'system',
        data: '[kiln] the daemon is shutting down; this build will run again after restart\n',
        at: this.o.clock.now().toISOString(),
      });
      log.info('build interrupted by shutdown');
      return;
    }
    void this.finish(build, end);
    log.info({ status: build.status }, 'build finished');
  }

  /**
   * Refuses an `allowed_hosts` beyond the operator's ceiling before anything is queued, and
   * stores it normalised, as the proxy will read it.
   */
  private withAllowedHosts(request: BuildRequest): BuildRequest {
    if (request.allowedHosts === undefined || request.allowedHosts === null) return request;
    const allowlist = buildAllowlist(this.o.egress, request.allowedHosts);
    return { ...request, allowedHosts: allowlist.toStrings() };
  }

  private sink(build: Build): BuildRunSink {
    return {
      status: (status) => {
        if (TERMINAL_STATUSES.has(build.status) || build.status === status) return;
        build.status = status;
        this.o.events.appendWithUpdate(build, [{ type: 'status', status }]);
        this.notify(build);
      },
      phase: (phase: BuildPhase) => {
        if (!TERMINAL_STATUSES.has(build.status)) {
          notePhaseArrival(build.timings, phase, this.o.clock.now().getTime());
        }
        this.o.events.append(build.id, { type: 'phase', phase });
      },
      log: (stream: BuildLogStream, data: string, at: Date) => {
        this.o.events.appendLog(build.id, { type: 'log', stream, data, at: at.toISOString() });
      },
      mark: (phase, at) => {
        if (TERMINAL_STATUSES.has(build.status)) return;
        const vmStartedAt = lastMarkOf(build.timings, 'vm_start');
        markPhase(build.timings, phase, at.getTime());
        this.o.store.update(build);
        if (phase === 'agent' && vmStartedAt !== null) {
          this.o.metrics.vmBooted((at.getTime() - vmStartedAt) / 1000);
        }
      },
    };
  }

  /**
   * Stores the terminal status with its result and time account, tells the events, metrics
   * and listener, then runs the after-finish steps, timed: the cache commit when given (the
   * returned promise ends with it) and the source removal. Their times are stored on the
   * build once both are done; close() waits for them.
   */
  private finish(
    build: Build,
    end:
      | { status: 'ready'; result: NonNullable<Build['result']> }
      | { status: 'failed' | 'cancelled'; failure: NonNullable<Build['failure']> },
    commitCache?: () => Promise<boolean>,
  ): Promise<void> {
    const now = this.o.clock.now();
    this.buildSecrets.delete(build.id);
    build.status = end.status;
    build.finishedAt = now;
    build.result = end.status === 'ready' ? end.result : null;
    build.failure = end.status === 'ready' ? null : end.failure;
    const timings = accountTime(build.timings, now.getTime());
    // The terminal row, its status event and its result event in one commit: a crash keeps
    // all three or none (the build is then re-run or failed by the next start).
    this.o.events.appendWithUpdate(build, [
      { type: 'status', status: end.status },
      {
        type: 'result',
        status: end.status,
        result: build.result,
        failure: build.failure,
        timings,
      },
    ]);
    this.o.metrics.buildFinished(end.status, timings.totalSeconds ?? 0);
    this.o.metrics.buildPhases(timings.phases);
    this.notify(build);

    const steps: Partial<Record<AfterFinishStep, number>> = {};
    const timed = async (step: AfterFinishStep, run: () => Promise<unknown>): Promise<void> => {
      const since = this.o.clock.now().getTime();
      try {
        await run();
      } finally {
        steps[step] = Math.max(0, this.o.clock.now().getTime() - since);
      }
    };
    // The fork becomes its scope's disk only now that the build is stored `ready`, so a crash
    // before commits nothing.
    const committed = commitCache
      ? timed('cache_commit', commitCache).catch((err: unknown) => {
          this.o.logger.error(
            { err, buildId: build.id },
            'committing the cache disk failed; the previous one stays',
          );
        })
      : Promise.resolve();
    // The upload was only ever this build's source volume; the digest stays on the build. A
    // removal that fails is retried by the next start().
    const removed = timed('source_removal', () => this.dirs.remove(build.id)).catch(
      (err: unknown) => {
        this.o.logger.warn({ err, buildId: build.id }, 'could not remove the build source');
      },
    );
    const done = Promise.all([committed, removed]).then(() => {
      build.timings.afterFinish = steps;
      this.o.metrics.buildPhases(accountTime(build.timings, null).afterFinish ?? {});
      try {
        this.o.store.updateTimings(build);
      } catch (err) {
        this.o.logger.warn({ err, buildId: build.id }, 'could not store the after-finish timings');
      }
    });
    this.afterFinishing.add(done);
    void done.finally(() => this.afterFinishing.delete(done));
    return committed;
  }

  /** A restart found `build` running (or stopped by a shutdown) in the previous process. */
  private interrupted(build: Build): void {
    markInterrupted(build.timings, this.o.clock.now().getTime(), true);
  }

  private notify(build: Build): void {
    try {
      this.o.statusListener?.buildChanged(build);
    } catch (err) {
      this.o.logger.error({ err, buildId: build.id }, 'status listener failed');
    }
  }

  private logTail(buildId: string): string[] {
    return this.o.store
      .lastLogEvents(buildId, 20)
      .flatMap((e) => (e.data.type === 'log' ? e.data.data.split('\n') : []))
      .filter((line) => line !== '')
      .slice(-20);
  }
}

/** SECRET_CONFLICT when a per-build secret has the id of a stored secret the build asks for. */
function assertNoSecretClash(
  storedIds: readonly string[],
  buildSecretIds: ReadonlySet<string> | ReadonlyMap<string, string>,
): void {
  const clash = storedIds.find((id) => buildSecretIds.has(id));
  if (clash !== undefined) {
    throw new AppError(
      'SECRET_CONFLICT',
      `Secret ${JSON.stringify(clash)} is both a stored secret in "secrets" and a secret.${clash} part; rename one.`,
      { details: { secret: clash } },
    );
  }
}

/**
 * How an aborted build ends: the one place an abort reason becomes a stored failure. A
 * shutdown ends nothing (null): the build stays non-terminal and the next start re-runs it.
 */
function abortedEnd(
  reason: AbortReason,
  logTail: string[],
): { status: 'failed' | 'cancelled'; failure: BuildFailure } | null {
  switch (reason.kind) {
    case 'cancel':
      return {
        status: 'cancelled',
        failure: { code: 'cancelled', message: 'Cancelled by the client.', logTail },
      };
    case 'timeout':
      return {
        status: 'failed',
        failure: {
          code: 'timeout',
          message: `The build exceeded its timeout of ${reason.seconds} s.`,
          logTail,
        },
      };
    case 'shutdown':
      return null;
  }
}
