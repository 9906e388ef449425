import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhookSignature } from '../../src/webhooks/webhook-signature.js';

const secret = 'whsec_test_secret';
const body = '{"id":"whd_1","type":"build.ready"}';
const at = new Date('2026-01-01T00:00:00Z');

describe('Kiln-Signature', () => {
  it('is t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">', () => {
    const t = at.getTime() / 1000;
    const mac = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
    expect(signWebhook(secret, body, at)).toBe(`t=${t},v1=${mac}`);
  });

  it('verifies a fresh signature of the raw body', () => {
    const header = signWebhook(secret, body, at);
    expect(verifyWebhookSignature({ secret, header, body, now: at })).toEqual({ ok: true });
  });

  it('refuses a forged signature, another secret and a changed body', () => {
    const header = signWebhook(secret, body, at);
    const forged = header.replace(/v1=[0-9a-f]{4}/, 'v1=0000');
    expect(verifyWebhookSignature({ secret, header: forged, body, now: at })).toEqual({
      ok: false,
      problem: 'mismatch',
    });
    expect(verifyWebhookSignature({ secret: 'whsec_other', header, body, now: at }).ok).toBe(false);
    expect(
      verifyWebhookSignature({ secret, header, body: body.replace('ready', 'failed'), now: at }),
    ).toEqual({ ok: false, problem: 'mismatch' });
  });

  it('refuses a replay outside the 5-minute window, and a re-stamped old body', () => {
    const header = signWebhook(secret, body, at);
    const later = new Date(at.getTime() + 301_000);
    expect(verifyWebhookSignature({ secret, header, body, now: later })).toEqual({
      ok: false,
      problem: 'outside_tolerance',
    });
    // Changing t to look fresh breaks the MAC: the timestamp is signed.
    const restamped = header.replace(/^t=\d+/, `t=${later.getTime() / 1000}`);
    expect(verifyWebhookSignature({ secret, header: restamped, body, now: later })).toEqual({
      ok: false,
      problem: 'mismatch',
    });
  });

  it('refuses a missing or malformed header', () => {
    for (const header of [null, '', 't=1', 'v1=abc', 'sha256=00']) {
      expect(verifyWebhookSignature({ secret, header, body, now: at })).toEqual({
        ok: false,
        problem: 'malformed',
      });
    }
  });
});
