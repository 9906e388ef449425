import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { signWebhook, verifyWebhookSignature } from '../../src/webhooks/webhook-signature.js';

const secret = 'whsec_test_secret';
const body = '{"id":"whd_1","type":"build.ready"}';
const at = new Date('2026-01-01T00:00:00Z');

describe('Kiln-Signature', () => {
  it('is t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">', () => {
    const t = at.getTime() / 1000;
    const mac = createHmac('sha256', secret).update(`${t}.${body}`).digest('hex');
    expect(signWebhook([secret], body, at)).toBe(`t=${t},v1=${mac}`);
  });

  it('carries one v1 per signing secret, current first, while a rotation overlaps', () => {
    const t = at.getTime() / 1000;
    const mac = (k: string) => createHmac('sha256', k).update(`${t}.${body}`).digest('hex');
    const header = signWebhook(['whsec_new', 'whsec_old'], body, at);
    expect(header).toBe(`t=${t},v1=${mac('whsec_new')},v1=${mac('whsec_old')}`);
    for (const key of ['whsec_new', 'whsec_old']) {
      expect(verifyWebhookSignature({ secret: key, header, body, now: at })).toEqual({ ok: true });
    }
    expect(verifyWebhookSignature({ secret: 'whsec_other', header, body, now: at })).toEqual({
      ok: false,
      problem: 'mismatch',
    });
    expect(() => signWebhook([], body, at)).toThrow();
  });

  it('verifies a fresh signature of the raw body', () => {
    const header = signWebhook([secret], body, at);
    expect(verifyWebhookSignature({ secret, header, body, now: at })).toEqual({ ok: true });
  });

  it('refuses a forged signature, another secret and a changed body', () => {
    const header = signWebhook([secret], body, at);
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
    const header = signWebhook([secret], body, at);
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

  it('the verification recipe in docs/contracts.md takes both secrets in a rotation, and refuses forgeries and replays', () => {
    const contracts = readFileSync(
      path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'docs', 'contracts.md'),
      'utf8',
    );
    const section = contracts.slice(contracts.indexOf('**Signature.**'));
    const code = /```js\n([\s\S]*?)```/.exec(section)?.[1];
    expect(code).toBeDefined();
    const verify = runInNewContext(`${code}\nverify;`, {
      require: createRequire(import.meta.url),
      Buffer,
    }) as (secrets: string[], header: string, rawBody: string, nowSeconds: number) => boolean;
    const now = at.getTime() / 1000;
    const both = signWebhook(['whsec_new', 'whsec_old'], body, at);
    expect(verify(['whsec_new'], both, body, now)).toBe(true);
    expect(verify(['whsec_old'], both, body, now)).toBe(true);
    expect(verify(['whsec_other', 'whsec_old'], both, body, now)).toBe(true);
    expect(verify(['whsec_other'], both, body, now)).toBe(false);
    const single = signWebhook(['whsec_new'], body, at);
    expect(verify(['whsec_old'], single, body, now)).toBe(false);
    expect(verify(['whsec_new'], single, body.replace('ready', 'failed'), now)).toBe(false);
    expect(verify(['whsec_new'], single, body, now + 301)).toBe(false);
    expect(verify(['whsec_new'], single.replace(/^t=\d+/, `t=${now + 301}`), body, now + 301)).toBe(
      false,
    );
    expect(verify(['whsec_new'], 'v1=00', body, now)).toBe(false);
  });
});
