import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ResolvedAddress } from '../../src/egress/egress-resolver.js';
import { verifyWebhookSignature } from '../../src/webhooks/webhook-signature.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { okOutcome } from '../helpers/fake-build-runner.js';
import { LoopbackOnlyConnector } from '../helpers/loopback-only-connector.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { sampleTar } from '../helpers/tar-builder.js';

/** What the receiver got: the raw body and the headers, per request. */
interface Received {
  delivery: string;
  event: string;
  signature: string;
  body: string;
}

/**
 * A webhook receiver on 127.0.0.1: records each request and answers the next status of the
 * delivery's script (200 once the script is used up).
 */
class Receiver {
  readonly received: Received[] = [];
  script: number[] = [];
  private readonly server: Server;

  constructor() {
    this.server = createServer((req: IncomingMessage, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        this.received.push({
          delivery: String(req.headers['kiln-delivery']),
          event: String(req.headers['kiln-event']),
          signature: String(req.headers['kiln-signature']),
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.statusCode = this.script.shift() ?? 200;
        res.end('ok');
      });
    });
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    return new Promise((resolve) =>
      this.server.close(() => {
        resolve();
      }),
    );
  }
}

/** Test DNS: names map to the addresses given; each lookup is counted. */
function fakeDns(table: Record<string, string>) {
  const lookups: string[] = [];
  return {
    lookups,
    resolve: (name: string): Promise<readonly ResolvedAddress[]> => {
      lookups.push(name);
      const address = table[name];
      if (address === undefined) return Promise.reject(new Error(`ENOTFOUND ${name}`));
      return Promise.resolve([{ address, family: address.includes(':') ? 6 : 4 }]);
    },
  };
}

let receiver: Receiver;
let port: number;
let connector: LoopbackOnlyConnector;
const open: Harness[] = [];

beforeEach(async () => {
  receiver = new Receiver();
  port = await receiver.listen();
  connector = new LoopbackOnlyConnector();
});
afterEach(async () => {
  for (const h of open.splice(0).reverse()) await h.close();
  await receiver.close();
  expect(connector.violations).toEqual([]);
});

const DNS = {
  'hooks.test': '127.0.0.1',
  'metadata.test': '169.254.169.254',
  'intranet.test': '10.1.2.3',
};

async function harness(options: { dataDir?: string; time?: ManualClock } = {}) {
  const dns = fakeDns(DNS);
  const h = await createHarness({
    ...options,
    env: { KILN_WEBHOOK_EXCEPTIONS: `hooks.test:${port}` },
    webhookNetwork: { resolve: dns.resolve, connect: connector.connect },
  });
  open.push(h);
  return { h, dns };
}

async function submit(h: Harness, webhookUrl: string): Promise<string> {
  const fd = new FormData();
  fd.append('webhook_url', webhookUrl);
  fd.append('source', new Blob([sampleTar()]), 'app.tar');
  const res = await h.app.request('/builds', {
    method: 'POST',
    body: fd,
    headers: { authorization: `Bearer ${await h.token('acme')}` },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

interface DeliveryView {
  id: string;
  event: string;
  state: string;
  attempts: { attempt: number; status_code: number | null; error: string | null }[];
}

async function deliveries(h: Harness, buildId: string): Promise<DeliveryView[]> {
  const res = await h.app.request(`/builds/${buildId}/webhooks`, {
    headers: { authorization: `Bearer ${await h.token('acme')}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { deliveries: DeliveryView[] }).deliveries;
}

async function signingSecret(h: Harness): Promise<string> {
  const res = await h.app.request('/webhook-settings', {
    headers: { authorization: `Bearer ${await h.token('acme')}` },
  });
  return ((await res.json()) as { signing_secret: string }).signing_secret;
}

function attemptsOf(h: Harness, deliveryIdOrEvent: string): number {
  const row = h.db
    .prepare<[string, string], { n: number }>(
      `SELECT COUNT(*) AS n FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id
       WHERE d.id = ? OR d.event = ?`,
    )
    .get(deliveryIdOrEvent, deliveryIdOrEvent);
  return row?.n ?? 0;
}

describe('webhooks', () => {
  it('retries a receiver that answers 500 twice, then 200, with signatures that verify', async () => {
    const { h, dns } = await harness();
    const secret = await signingSecret(h);
    receiver.script = [500, 500, 200];
    const id = await submit(h, `http://hooks.test:${port}/kiln`);
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    run.sink.status('building');
    await eventually(() => attemptsOf(h, 'build.building') === 1);
    h.time.advance(10_000);
    await eventually(() => attemptsOf(h, 'build.building') === 2);
    h.time.advance(20_000);
    await eventually(() => attemptsOf(h, 'build.building') === 3);
    run.finish(okOutcome(`acme/${id}:${id}`));
    await eventually(() => attemptsOf(h, 'build.ready') === 1);

    const [building, ready] = await deliveries(h, id);
    expect(building).toMatchObject({ event: 'build.building', state: 'delivered' });
    expect(building?.attempts.map((a) => a.status_code)).toEqual([500, 500, 200]);
    expect(building?.attempts.map((a) => a.error)).toEqual(['HTTP 500', 'HTTP 500', null]);
    expect(ready).toMatchObject({ event: 'build.ready', state: 'delivered' });
    expect(receiver.received.map((r) => r.event)).toEqual([
      'build.building',
      'build.building',
      'build.building',
      'build.ready',
    ]);
    // DNS is asked once per attempt; the connection goes to the checked address.
    expect(dns.lookups).toEqual(['hooks.test', 'hooks.test', 'hooks.test', 'hooks.test']);
    expect(connector.calls.map((c) => `${c.address}:${c.port}`)).toEqual(
      Array(4).fill(`127.0.0.1:${port}`),
    );
    for (const r of receiver.received) {
      expect(
        verifyWebhookSignature({ secret, header: r.signature, body: r.body, now: h.time.now() }),
      ).toEqual({ ok: true });
    }
    const event = JSON.parse(receiver.received[3]!.body) as Record<string, unknown>;
    expect(event).toMatchObject({
      id: ready?.id,
      type: 'build.ready',
      build: {
        id,
        tenant: 'acme',
        status: 'ready',
        image_ref: `${new URL(h.url).host}/acme/${id}:${id}`,
        image_digest: `sha256:${'a'.repeat(64)}`,
        error_code: null,
      },
    });
    expect(event.build).toHaveProperty('timings.total_seconds');
    expect(event.build).toHaveProperty('timings.phases.queued');
  });

  it('delivers after a restart what a stopped daemon left pending', async () => {
    const time = new ManualClock();
    const first = await harness({ time });
    receiver.script = [500];
    const id = await submit(first.h, `http://hooks.test:${port}/kiln`);
    await first.h.runner.waitForRuns(1);
    first.h.runner.runOf(id).sink.status('building');
    await eventually(() => attemptsOf(first.h, 'build.building') === 1);
    await first.h.stop();
    open.splice(open.indexOf(first.h), 1);

    const second = await harness({ dataDir: first.h.dataDir, time });
    expect(receiver.received).toHaveLength(1);
    time.advance(10_000);
    await eventually(() => attemptsOf(second.h, 'build.building') === 2);
    const [delivery] = await deliveries(second.h, id);
    expect(delivery?.state).toBe('delivered');
    expect(delivery?.attempts.map((a) => a.status_code)).toEqual([500, 200]);
    expect(new Set(receiver.received.map((r) => r.delivery))).toEqual(new Set([delivery?.id]));
  });

  it('refuses names resolving to metadata or private addresses, and loopback not excepted, without connecting', async () => {
    const { h } = await harness();
    const urls = [
      'http://metadata.test/latest/meta-data',
      'http://intranet.test:8080/hook',
      `http://127.0.0.1:${port}/hook`,
    ];
    const ids: string[] = [];
    for (const url of urls) {
      const id = await submit(h, url);
      ids.push(id);
      await h.runner.waitForRuns(ids.length);
      h.runner.runOf(id).sink.status('building');
      h.runner.runOf(id).finish(okOutcome(`acme/${id}:${id}`));
    }
    for (const id of ids) {
      await eventually(() => h.webhooks.forBuild(id).every((d) => d.attempts.length === 1));
    }
    const errors = await Promise.all(
      ids.map(async (id) => (await deliveries(h, id))[0]?.attempts[0]),
    );
    expect(errors.map((a) => a?.status_code)).toEqual([null, null, null]);
    expect(errors[0]?.error).toContain('refused 169.254.169.254:80: cloud metadata');
    expect(errors[1]?.error).toContain('refused 10.1.2.3:8080: private address');
    expect(errors[2]?.error).toContain(`refused 127.0.0.1:${port}: loopback address`);
    expect(connector.calls).toEqual([]);
    expect(receiver.received).toEqual([]);
  });

  it('sends to the tenant default when a build names no webhook_url, and refuses a bad URL', async () => {
    const { h } = await harness();
    const auth = { authorization: `Bearer ${await h.token('acme')}` };
    const put = (body: unknown) =>
      h.app.request('/webhook-settings', {
        method: 'PUT',
        body: JSON.stringify(body),
        headers: { ...auth, 'content-type': 'application/json' },
      });
    expect((await put({ default_url: 'ftp://x' })).status).toBe(400);
    const res = await put({ default_url: `http://hooks.test:${port}/default` });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      default_url: `http://hooks.test:${port}/default`,
      signing_secret: expect.stringMatching(/^whsec_/) as unknown,
    });
    const fd = new FormData();
    fd.append('source', new Blob([sampleTar()]), 'app.tar');
    const created = await h.app.request('/builds', { method: 'POST', body: fd, headers: auth });
    const { id } = (await created.json()) as { id: string };
    await h.runner.waitForRuns(1);
    h.runner.runOf(id).sink.status('building');
    await eventually(() => receiver.received.length === 1);
    const bad = new FormData();
    bad.append('webhook_url', 'http://user:pw@hooks.test/');
    bad.append('source', new Blob([sampleTar()]), 'app.tar');
    const refused = await h.app.request('/builds', { method: 'POST', body: bad, headers: auth });
    expect(refused.status).toBe(400);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe(
      'INVALID_WEBHOOK_URL',
    );
  });

  it('signs with the new and the old secret during a rotation overlap, then with the new one only', async () => {
    const time = new ManualClock();
    const first = await harness({ time });
    const auth = { authorization: `Bearer ${await first.h.token('acme')}` };
    const old = await signingSecret(first.h);
    const rotate = (h: Harness, body?: string) =>
      h.app.request('/webhook-settings/rotate-secret', {
        method: 'POST',
        ...(body === undefined ? {} : { body }),
        headers: { ...auth, 'content-type': 'application/json' },
      });
    for (const bad of [
      '{"overlap_seconds": -1}',
      '{"overlap_seconds": 604801}',
      '{"overlap_seconds": 1.5}',
    ]) {
      const res = await rotate(first.h, bad);
      expect(res.status, bad).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'RESOURCE_OUT_OF_RANGE',
      );
    }
    expect((await rotate(first.h, 'nope')).status).toBe(400);
    expect(await signingSecret(first.h)).toBe(old);

    const res = await rotate(first.h, '{"overlap_seconds": 3600}');
    expect(res.status).toBe(200);
    const rotated = (await res.json()) as {
      signing_secret: string;
      previous_secret_expires_at: string;
    };
    expect(rotated.signing_secret).toMatch(/^whsec_/);
    expect(rotated.signing_secret).not.toBe(old);
    expect(rotated.previous_secret_expires_at).toBe(
      new Date(time.now().getTime() + 3_600_000).toISOString(),
    );
    // The replaced secret survives a restart with its expiry (stored, sealed, in SQLite).
    await first.h.stop();
    open.splice(open.indexOf(first.h), 1);
    const { h } = await harness({ dataDir: first.h.dataDir, time });
    const fresh = rotated.signing_secret;
    const verify = (secret: string, r: Received) =>
      verifyWebhookSignature({ secret, header: r.signature, body: r.body, now: time.now() });

    const id = await submit(h, `http://hooks.test:${port}/kiln`);
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    run.sink.status('building');
    await eventually(() => receiver.received.length === 1);
    const during = receiver.received[0]!;
    expect(during.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64},v1=[0-9a-f]{64}$/);
    expect(verify(fresh, during)).toEqual({ ok: true });
    expect(verify(old, during)).toEqual({ ok: true });

    time.advance(3_600_000);
    // API tokens live an hour too: later requests take a fresh one.
    auth.authorization = `Bearer ${await h.token('acme')}`;
    const settings = await h.app.request('/webhook-settings', { headers: auth });
    expect(await settings.json()).toMatchObject({
      signing_secret: fresh,
      previous_secret_expires_at: null,
    });
    run.finish(okOutcome(`acme/${id}:${id}`));
    await eventually(() => receiver.received.length === 2);
    const after = receiver.received[1]!;
    expect(after.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(verify(fresh, after)).toEqual({ ok: true });
    expect(verify(old, after)).toEqual({ ok: false, problem: 'mismatch' });

    // overlap 0: the replaced secret stops at once; and an empty body takes the default (a day).
    const immediate = (await (await rotate(h, '{"overlap_seconds": 0}')).json()) as {
      previous_secret_expires_at: string | null;
    };
    expect(immediate.previous_secret_expires_at).toBeNull();
    expect(h.webhooks.signingSecrets('acme')).toHaveLength(1);
    const byDefault = (await (await rotate(h)).json()) as { previous_secret_expires_at: string };
    expect(byDefault.previous_secret_expires_at).toBe(
      new Date(time.now().getTime() + 86_400_000).toISOString(),
    );
    expect(h.webhooks.signingSecrets('acme')).toHaveLength(2);
  });
});
