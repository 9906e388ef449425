import { createHmac, timingSafeEqual } from 'node:crypto';

/** The header carrying the signature: `Kiln-Signature: t=<unix seconds>,v1=<hex>[,v1=<hex>]`. */
export const SIGNATURE_HEADER = 'kiln-signature';
/** How far a receiver should accept a signature's timestamp from its own clock (seconds). */
export const DEFAULT_TOLERANCE_SECONDS = 300;

/** HMAC-SHA256 of `<t>.<body>` under the tenant's signing secret, hex. */
function mac(secret: string, timestamp: number, body: string): string {
  return createHmac('sha256', secret).update(`${timestamp}.${body}`, 'utf8').digest('hex');
}

/**
 * The `Kiln-Signature` value for one attempt: `t=<unix seconds>` and one `v1=` per secret, in
 * the order given (the current secret first, then one a rotation replaced while its overlap
 * lasts), so a receiver holding either verifies. Each attempt is signed at the time it is
 * sent, so a retry carries a fresh timestamp (as Stripe's retries do).
 */
export function signWebhook(secrets: readonly string[], body: string, at: Date): string {
  if (secrets.length === 0) throw new Error('signWebhook needs at least one secret');
  const t = Math.floor(at.getTime() / 1000);
  return [`t=${t}`, ...secrets.map((secret) => `v1=${mac(secret, t, body)}`)].join(',');
}

/** Why a signature was refused. */
export type SignatureProblem = 'malformed' | 'mismatch' | 'outside_tolerance';

/**
 * The receiver's check, as documented in docs/contracts.md#webhooks: parse `t` and every
 * `v1`, recompute the HMAC over `<t>.<raw body>` with the signing secret, compare in constant
 * time, and refuse a timestamp more than `toleranceSeconds` from now (a replay). The body
 * must be the raw bytes received, before any JSON parsing.
 */
export function verifyWebhookSignature(options: {
  secret: string;
  header: string | null | undefined;
  body: string;
  now: Date;
  toleranceSeconds?: number;
}): { ok: true } | { ok: false; problem: SignatureProblem } {
  const tolerance = options.toleranceSeconds ?? DEFAULT_TOLERANCE_SECONDS;
  let t: number | null = null;
  const candidates: string[] = [];
  for (const part of (options.header ?? '').split(',')) {
    const eq = part.indexOf('=');
    const key = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    if (key === 't' && /^\d{1,12}$/.test(value)) t = Number(value);
    else if (key === 'v1' && /^[0-9a-f]{64}$/.test(value)) candidates.push(value);
  }
  if (t === null || candidates.length === 0) return { ok: false, problem: 'malformed' };
  const expected = Buffer.from(mac(options.secret, t, options.body), 'hex');
  const matches = candidates.some((c) => timingSafeEqual(Buffer.from(c, 'hex'), expected));
  if (!matches) return { ok: false, problem: 'mismatch' };
  if (Math.abs(options.now.getTime() / 1000 - t) > tolerance) {
    return { ok: false, problem: 'outside_tolerance' };
  }
  return { ok: true };
}
