import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { sendWebhook, type WebhookAddressPolicy, type WebhookNetwork } from './send-webhook.js';
import { signWebhook } from './webhook-signature.js';
import type { WebhookStore } from './webhook-store.js';
import type { Clock } from '../../common/time/clock.js';
import type { Build, BuildStatus } from '../builds/build.js';
import { timingsView } from '../http/build-view.js';
import type { Scheduler } from '../time/scheduler.js';

/** The statuses that send an event. */
const EVENT_STATUSES: ReadonlySet<BuildStatus> = new Set([
  'building',
  'ready',
  'failed',
  'cancelled',
]);
/** First retry after at most this long; each further retry doubles it, up to the cap. */
const BASE_DELAY_MS = 10_000;
const MAX_DELAY_MS = 3_600_000;

/**
 * The wait before retry `n` (1 = the first retry): exponential, capped, with "equal jitter"
 * (half fixed, half random), so receivers that failed together are not hit together again,
 * and the wait is never more than the un-jittered delay.
 */
export function retryDelayMs(n: number, random: () => number): number {
  const full = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** (n - 1));
  return Math.floor(full / 2 + random() * (full / 2));
}

export interface WebhookDispatcherOptions {
  store: WebhookStore;
  network: WebhookNetwork;
  policy: WebhookAddressPolicy;
  timeoutSeconds: number;
  retrySeconds: number;
  clock: Clock;
  scheduler: Scheduler;
  logger: Logger;
  random?: () => number;
}

/** The JSON body of an event (docs/contracts.md#webhooks). */
function eventBody(id: string, build: Build, at: Date): string {
  return JSON.stringify({
    id,
    type: `build.${build.status}`,
    created_at: at.toISOString(),
    build: {
      id: build.id,
      tenant: build.tenant,
      status: build.status,
      image_ref: build.result?.imageRef ?? null,
      image_refs: build.result ? (build.result.imageRefs ?? [build.result.imageRef]) : [],
      image_digest: build.result?.imageDigest ?? null,
      error_code: build.failure?.code ?? null,
      error_message: build.failure?.message ?? null,
      created_at: build.createdAt.toISOString(),
      started_at: build.startedAt?.toISOString() ?? null,
      finished_at: build.finishedAt?.toISOString() ?? null,
      timings: timingsView(build),
    },
  });
}

/**
 * Sends signed build events, at least once. Each event is stored (with its exact body) before
 * the first attempt; failed attempts are retried with exponential backoff and jitter on the
 * injected Scheduler until `retrySeconds` after the event; `start()` resumes what a previous
 * process left pending. Retries are planned from the stored `next_attempt_at` rather than by a
 * retry library, because the plan must survive a restart and run on the injected clock.
 */
export class WebhookDispatcher {
  private readonly timers = new Map<string, () => void>();
  private readonly inFlight = new Set<Promise<void>>();
  /** Deliveries with an attempt under way (planned again only once it is recorded). */
  private readonly active = new Set<string>();
  private closed = false;
  private readonly random: () => number;

  constructor(private readonly o: WebhookDispatcherOptions) {
    this.random = o.random ?? Math.random;
  }

  /** Resumes every pending delivery at its planned time (at once when it is due). */
  start(): void {
    for (const delivery of this.o.store.pending()) {
      this.plan(delivery.id, delivery.nextAttemptAt ?? this.o.clock.now());
    }
  }

  /** Called on every status change: stores and sends an event when the status is one that has one. */
  buildChanged(build: Build): void {
    if (this.closed || !EVENT_STATUSES.has(build.status)) return;
    const url = build.request.webhookUrl ?? this.o.store.defaultUrl(build.tenant);
    if (url === null) return;
    const now = this.o.clock.now();
    const id = `whd_${randomBytes(12).toString('base64url')}`;
    this.o.store.insert({
      id,
      buildId: build.id,
      tenant: build.tenant,
      url,
      event: `build.${build.status}`,
      payload: eventBody(id, build, now),
      createdAt: now,
      giveUpAt: new Date(now.getTime() + this.o.retrySeconds * 1000),
    });
    this.plan(id, now);
  }

  /** Cancels planned attempts and waits for those in flight; pending ones resume at the next start. */
  async close(): Promise<void> {
    this.closed = true;
    for (const cancel of this.timers.values()) cancel();
    this.timers.clear();
    await Promise.all([...this.inFlight]);
  }

  private plan(id: string, at: Date): void {
    if (this.closed || this.timers.has(id) || this.active.has(id)) return;
    const wait = at.getTime() - this.o.clock.now().getTime();
    if (wait <= 0) {
      this.launch(id);
      return;
    }
    this.timers.set(
      id,
      this.o.scheduler.setTimeout(() => {
        this.timers.delete(id);
        this.launch(id);
      }, wait),
    );
  }

  private launch(id: string): void {
    this.active.add(id);
    const run = this.attempt(id)
      .catch((err: unknown) => {
        this.active.delete(id);
        this.o.logger.error({ err, deliveryId: id }, 'webhook attempt failed unexpectedly');
      })
      .finally(() => {
        this.inFlight.delete(run);
      });
    this.inFlight.add(run);
  }

  private async attempt(id: string): Promise<void> {
    const delivery = this.o.store.get(id);
    if (delivery?.state !== 'pending') {
      this.active.delete(id);
      return;
    }
    const secrets = this.o.store.signingSecrets(delivery.tenant);
    const startedAt = this.o.clock.now();
    const result = await sendWebhook({
      url: delivery.url,
      body: delivery.payload,
      headers: {
        'content-type': 'application/json',
        'user-agent': 'kiln-webhooks/1',
        'kiln-event': delivery.event,
        'kiln-delivery': delivery.id,
        'kiln-signature': signWebhook(secrets, delivery.payload, startedAt),
      },
      policy: this.o.policy,
      network: this.o.network,
      timeoutMs: this.o.timeoutSeconds * 1000,
      scheduler: this.o.scheduler,
    });
    const now = this.o.clock.now();
    const attempt = this.o.store.attemptsMade(id) + 1;
    const ok = result.error === null;
    const retryAt = new Date(now.getTime() + retryDelayMs(attempt, this.random));
    const next = ok
      ? { state: 'delivered' as const, nextAttemptAt: null }
      : retryAt.getTime() > delivery.giveUpAt.getTime()
        ? { state: 'failed' as const, nextAttemptAt: null }
        : { state: 'pending' as const, nextAttemptAt: retryAt };
    this.o.store.recordAttempt(
      id,
      {
        attempt,
        startedAt,
        latencyMs: now.getTime() - startedAt.getTime(),
        statusCode: result.statusCode,
        error: result.error,
      },
      next,
    );
    this.o.logger.info(
      {
        deliveryId: id,
        buildId: delivery.buildId,
        attempt,
        status: result.statusCode,
        state: next.state,
      },
      ok ? 'webhook delivered' : 'webhook attempt failed',
    );
    this.active.delete(id);
    if (next.nextAttemptAt !== null) this.plan(id, next.nextAttemptAt);
  }
}
