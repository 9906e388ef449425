import { randomBytes } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import type { Clock } from '../../common/time/clock.js';
import { openValue, sealValue, type SealedValue } from '../auth/sealed-value.js';

/** A delivery's state: waiting for its next attempt, delivered (a 2xx), or given up. */
export type DeliveryState = 'pending' | 'delivered' | 'failed';

export interface WebhookAttempt {
  attempt: number;
  startedAt: Date;
  latencyMs: number;
  /** The receiver's HTTP status, or null when no response came (refused, timeout, …). */
  statusCode: number | null;
  error: string | null;
}

export interface WebhookDelivery {
  id: string;
  buildId: string;
  tenant: string;
  url: string;
  /** `build.building`, `build.ready`, `build.failed`, `build.cancelled`. */
  event: string;
  /** The exact JSON body every attempt sends. */
  payload: string;
  state: DeliveryState;
  createdAt: Date;
  nextAttemptAt: Date | null;
  giveUpAt: Date;
}

export interface TenantWebhookSettings {
  defaultUrl: string | null;
  /** The HMAC key receivers verify `Kiln-Signature` with (`whsec_…`). */
  signingSecret: string;
  /**
   * Until when the secret the last rotation replaced still signs deliveries beside the
   * current one; null when there is none (never rotated, rotated without overlap, or expired).
   */
  previousSecretExpiresAt: Date | null;
}

interface DeliveryRow {
  id: string;
  build_id: string;
  tenant: string;
  url: string;
  event: string;
  payload: string;
  state: DeliveryState;
  created_at: number;
  next_attempt_at: number | null;
  give_up_at: number;
}

interface AttemptRow {
  attempt: number;
  started_at: number;
  latency_ms: number;
  status_code: number | null;
  error: string | null;
}

interface TenantRow {
  default_url: string | null;
  secret_iv: Buffer;
  secret_tag: Buffer;
  secret_ciphertext: Buffer;
  previous_secret_iv: Buffer | null;
  previous_secret_tag: Buffer | null;
  previous_secret_ciphertext: Buffer | null;
  previous_expires_at: number | null;
}

function toDelivery(r: DeliveryRow): WebhookDelivery {
  return {
    id: r.id,
    buildId: r.build_id,
    tenant: r.tenant,
    url: r.url,
    event: r.event,
    payload: r.payload,
    state: r.state,
    createdAt: new Date(r.created_at),
    nextAttemptAt: r.next_attempt_at === null ? null : new Date(r.next_attempt_at),
    giveUpAt: new Date(r.give_up_at),
  };
}

function toAttempt(r: AttemptRow): WebhookAttempt {
  return {
    attempt: r.attempt,
    startedAt: new Date(r.started_at),
    latencyMs: r.latency_ms,
    statusCode: r.status_code,
    error: r.error,
  };
}

/** A new signing secret: `whsec_` and 256 random bits. */
function newSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`;
}

function aad(tenant: string): Buffer {
  return Buffer.from(`kiln-webhook-signing-secret\0${tenant}`, 'utf8');
}

/**
 * Webhook state in SQLite: each tenant's settings (the signing secret encrypted with the
 * secrets key, bound to the tenant), every delivery (stored before it is first attempted)
 * and every attempt. The one owner of the webhook tables.
 */
export class WebhookStore {
  private readonly tenantGet: Statement<[string], TenantRow>;
  private readonly tenantInsert: Statement;
  private readonly tenantSetUrl: Statement;
  private readonly tenantRotate: Statement;
  private readonly deliveryInsert: Statement;
  private readonly deliveryGet: Statement<[string], DeliveryRow>;
  private readonly deliveriesPending: Statement<[], DeliveryRow>;
  private readonly deliveriesOfBuild: Statement<[string], DeliveryRow>;
  private readonly deliverySet: Statement;
  private readonly attemptInsert: Statement;
  private readonly attemptsOf: Statement<[string], AttemptRow>;
  private readonly attemptCount: Statement<[string], { n: number }>;

  constructor(
    private readonly db: Database,
    private readonly key: Buffer,
    private readonly clock: Clock,
  ) {
    this.tenantGet = db.prepare(
      `SELECT default_url, secret_iv, secret_tag, secret_ciphertext, previous_secret_iv,
              previous_secret_tag, previous_secret_ciphertext, previous_expires_at
       FROM webhook_tenants WHERE tenant = ?`,
    );
    this.tenantInsert = db.prepare(
      `INSERT INTO webhook_tenants (tenant, default_url, secret_iv, secret_tag, secret_ciphertext, created_at, updated_at)
       VALUES (@tenant, NULL, @iv, @tag, @ciphertext, @now, @now) ON CONFLICT (tenant) DO NOTHING`,
    );
    this.tenantSetUrl = db.prepare(
      'UPDATE webhook_tenants SET default_url = @url, updated_at = @now WHERE tenant = @tenant',
    );
    this.tenantRotate = db.prepare(
      `UPDATE webhook_tenants SET secret_iv = @iv, secret_tag = @tag, secret_ciphertext = @ciphertext,
         previous_secret_iv = @previous_iv, previous_secret_tag = @previous_tag,
         previous_secret_ciphertext = @previous_ciphertext, previous_expires_at = @previous_expires_at,
         updated_at = @now
       WHERE tenant = @tenant`,
    );
    this.deliveryInsert = db.prepare(
      `INSERT INTO webhook_deliveries (id, build_id, tenant, url, event, payload, state, created_at, next_attempt_at, give_up_at)
       VALUES (@id, @build_id, @tenant, @url, @event, @payload, 'pending', @created_at, @created_at, @give_up_at)`,
    );
    this.deliveryGet = db.prepare('SELECT * FROM webhook_deliveries WHERE id = ?');
    this.deliveriesPending = db.prepare(
      "SELECT * FROM webhook_deliveries WHERE state = 'pending' ORDER BY next_attempt_at, id",
    );
    this.deliveriesOfBuild = db.prepare(
      'SELECT * FROM webhook_deliveries WHERE build_id = ? ORDER BY created_at, rowid',
    );
    this.deliverySet = db.prepare(
      'UPDATE webhook_deliveries SET state = @state, next_attempt_at = @next WHERE id = @id',
    );
    this.attemptInsert = db.prepare(
      `INSERT INTO webhook_attempts (delivery_id, attempt, started_at, latency_ms, status_code, error)
       VALUES (@delivery_id, @attempt, @started_at, @latency_ms, @status_code, @error)`,
    );
    this.attemptsOf = db.prepare(
      'SELECT attempt, started_at, latency_ms, status_code, error FROM webhook_attempts WHERE delivery_id = ? ORDER BY attempt',
    );
    this.attemptCount = db.prepare(
      'SELECT COUNT(*) AS n FROM webhook_attempts WHERE delivery_id = ?',
    );
  }

  /** A tenant's row; the signing secret is generated (and stored) on first use. */
  private tenantRow(tenant: string): TenantRow {
    const row = this.tenantGet.get(tenant);
    if (row !== undefined) return row;
    const sealed = sealValue(this.key, newSecret(), aad(tenant));
    this.tenantInsert.run({ tenant, ...sealed, now: this.clock.now().getTime() });
    const inserted = this.tenantGet.get(tenant);
    if (inserted === undefined) throw new Error('webhook settings row vanished after insert');
    return inserted;
  }

  /** The previous secret's sealed value and expiry, when it still signs at the clock's now. */
  private livePrevious(row: TenantRow): { sealed: SealedValue; expiresAt: Date } | null {
    const { previous_secret_iv: iv, previous_secret_tag: tag } = row;
    const ciphertext = row.previous_secret_ciphertext;
    const expiresAt = row.previous_expires_at;
    if (iv === null || tag === null || ciphertext === null || expiresAt === null) return null;
    if (expiresAt <= this.clock.now().getTime()) return null;
    return { sealed: { iv, tag, ciphertext }, expiresAt: new Date(expiresAt) };
  }

  private open(tenant: string, sealed: SealedValue): string {
    return openValue(this.key, sealed, aad(tenant));
  }

  /** A tenant's settings; the signing secret is generated (and stored) on first use. */
  settings(tenant: string): TenantWebhookSettings {
    const row = this.tenantRow(tenant);
    return {
      defaultUrl: row.default_url,
      signingSecret: this.open(tenant, {
        iv: row.secret_iv,
        tag: row.secret_tag,
        ciphertext: row.secret_ciphertext,
      }),
      previousSecretExpiresAt: this.livePrevious(row)?.expiresAt ?? null,
    };
  }

  /**
   * The secrets a delivery made now is signed with: the current one first, then the one the
   * last rotation replaced while its overlap lasts.
   */
  signingSecrets(tenant: string): string[] {
    const row = this.tenantRow(tenant);
    const previous = this.livePrevious(row);
    const current = this.open(tenant, {
      iv: row.secret_iv,
      tag: row.secret_tag,
      ciphertext: row.secret_ciphertext,
    });
    return previous === null ? [current] : [current, this.open(tenant, previous.sealed)];
  }

  /**
   * Replaces the signing secret with a new one. The replaced secret keeps signing beside it
   * for `overlapSeconds` (0: it stops at once); a secret an earlier rotation replaced stops
   * now, so at most two ever sign.
   */
  rotateSecret(tenant: string, overlapSeconds: number): TenantWebhookSettings {
    this.db.transaction(() => {
      const row = this.tenantRow(tenant);
      const now = this.clock.now().getTime();
      const keep = overlapSeconds > 0;
      this.tenantRotate.run({
        tenant,
        ...sealValue(this.key, newSecret(), aad(tenant)),
        previous_iv: keep ? row.secret_iv : null,
        previous_tag: keep ? row.secret_tag : null,
        previous_ciphertext: keep ? row.secret_ciphertext : null,
        previous_expires_at: keep ? now + overlapSeconds * 1000 : null,
        now,
      });
    })();
    return this.settings(tenant);
  }

  /** Sets (or clears, with null) the URL builds of this tenant get when they name none. */
  setDefaultUrl(tenant: string, url: string | null): TenantWebhookSettings {
    this.settings(tenant);
    this.tenantSetUrl.run({ tenant, url, now: this.clock.now().getTime() });
    return this.settings(tenant);
  }

  /** The default URL without creating a settings row (null when none was set). */
  defaultUrl(tenant: string): string | null {
    return this.tenantGet.get(tenant)?.default_url ?? null;
  }

  insert(delivery: Omit<WebhookDelivery, 'state' | 'nextAttemptAt'>): void {
    this.deliveryInsert.run({
      id: delivery.id,
      build_id: delivery.buildId,
      tenant: delivery.tenant,
      url: delivery.url,
      event: delivery.event,
      payload: delivery.payload,
      created_at: delivery.createdAt.getTime(),
      give_up_at: delivery.giveUpAt.getTime(),
    });
  }

  get(id: string): WebhookDelivery | null {
    const row = this.deliveryGet.get(id);
    return row === undefined ? null : toDelivery(row);
  }

  pending(): WebhookDelivery[] {
    return this.deliveriesPending.all().map(toDelivery);
  }

  /** A build's deliveries with their attempts, oldest first. */
  forBuild(buildId: string): (WebhookDelivery & { attempts: WebhookAttempt[] })[] {
    return this.deliveriesOfBuild
      .all(buildId)
      .map((r) => ({ ...toDelivery(r), attempts: this.attemptsOf.all(r.id).map(toAttempt) }));
  }

  attemptsMade(id: string): number {
    return this.attemptCount.get(id)?.n ?? 0;
  }

  /** Records one attempt and the delivery's next state in one transaction. */
  recordAttempt(
    id: string,
    attempt: WebhookAttempt,
    next: { state: DeliveryState; nextAttemptAt: Date | null },
  ): void {
    this.db.transaction(() => {
      this.attemptInsert.run({
        delivery_id: id,
        attempt: attempt.attempt,
        started_at: attempt.startedAt.getTime(),
        latency_ms: attempt.latencyMs,
        status_code: attempt.statusCode,
        error: attempt.error,
      });
      this.deliverySet.run({
        id,
        state: next.state,
        next: next.nextAttemptAt === null ? null : next.nextAttemptAt.getTime(),
      });
    })();
  }
}
