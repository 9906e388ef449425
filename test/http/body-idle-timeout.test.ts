import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { CapturedLog, LOG_LEVEL } from '../helpers/captured-log.js';

/** Idle limit for these tests; the slow upload below takes many times longer in total. */
const IDLE_MS = 300;

function basic(token: string): string {
  return `Basic ${Buffer.from(`kiln:${token}`).toString('base64')}`;
}

/**
 * PATCHes `pieces` pieces of 1 KiB to `url`, one every `everyMs`, then ends (or, with `stall`,
 * stops after the first piece and never ends). Resolves with the status, or 0 when the server
 * closed the connection without answering.
 */
function slowPatch(
  url: string,
  auth: string,
  options: { pieces: number; everyMs: number; stall?: boolean },
): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request(url, {
      method: 'PATCH',
      headers: { authorization: auth, 'content-type': 'application/octet-stream' },
    });
    req.on('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', () => {
      resolve(0);
    });
    let sent = 0;
    const next = (): void => {
      req.write(Buffer.alloc(1024, 0x62));
      sent += 1;
      if (options.stall === true) return;
      if (sent === options.pieces) req.end();
      else setTimeout(next, options.everyMs);
    };
    next();
  });
}

describe('request bodies have an idle timeout, not a total one', () => {
  let h: Harness;
  let log: CapturedLog;
  let auth: string;

  beforeEach(async () => {
    log = new CapturedLog();
    h = await createHarness({ bodyIdleTimeoutMs: IDLE_MS, log });
    auth = basic(
      await h.apiTokens.create({ tenant: 'ops', scopes: ['registry:admin'], ttlSeconds: 3600 }),
    );
  });
  afterEach(async () => {
    await h.close();
  });

  async function session(): Promise<string> {
    const res = await fetch(`${h.url}/v2/library/slow/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: auth },
    });
    return `${h.url}${res.headers.get('location')}`;
  }

  it('accepts a slow but steady body that lasts far longer than the idle limit', async () => {
    const url = await session();
    // 16 pieces, 100 ms apart: ~1.5 s in all, five times the idle limit.
    expect(await slowPatch(url, auth, { pieces: 16, everyMs: 100 })).toBe(202);
    const status = await fetch(url, { headers: { authorization: auth } });
    expect(status.headers.get('range')).toBe(`0-${16 * 1024 - 1}`);
  });

  it('closes the connection of a body that stalls, and the session keeps its size', async () => {
    const url = await session();
    expect(await slowPatch(url, auth, { pieces: 1, everyMs: 0, stall: true })).toBe(0);
    const stalled = log.find(
      'request body stalled: no byte within the idle timeout, connection closed',
    );
    expect(stalled).toHaveLength(1);
    expect(stalled[0]).toMatchObject({ level: LOG_LEVEL.info, method: 'PATCH' });
    let status = await fetch(url, { headers: { authorization: auth } });
    // The aborted chunk holds the session until it was cut back.
    for (let i = 0; i < 100 && status.status === 409; i++) {
      await new Promise((r) => setTimeout(r, 20));
      status = await fetch(url, { headers: { authorization: auth } });
    }
    expect(status.headers.get('range')).toBe('0-0');
  }, 10_000);
});
