import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { sampleTar } from '../helpers/tar-builder.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness({ env: { KILN_MAX_CONCURRENT_BUILDS: '1' } });
});
afterEach(async () => {
  await h.close();
});

async function call(method: string, url: string, tenant = 'acme', body?: FormData) {
  return h.app.request(url, {
    method,
    ...(body ? { body } : {}),
    headers: { authorization: `Bearer ${await h.token(tenant)}` },
  });
}

function sourceForm(): FormData {
  const fd = new FormData();
  fd.append('source', new Blob([sampleTar()]), 'a.tar');
  return fd;
}

async function submit(tenant = 'acme'): Promise<string> {
  const res = await call('POST', '/builds', tenant, sourceForm());
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

type Json = Record<string, unknown>;

describe('builds API', () => {
  it('answers POST /builds with one consistent moment: started, or queued with a position', async () => {
    const started = await call('POST', '/builds', 'acme', sourceForm());
    expect(started.status).toBe(202);
    const first = (await started.json()) as Json;
    expect(first).toMatchObject({ status: 'booting', queue_position: null, attempts: 1 });
    expect(first.started_at).toEqual(expect.any(String));

    // KILN_MAX_CONCURRENT_BUILDS is 1: the next one waits.
    const waiting = await call('POST', '/builds', 'acme', sourceForm());
    expect(await waiting.json()).toMatchObject({
      status: 'queued',
      queue_position: 1,
      started_at: null,
      attempts: 0,
    });
  });

  it('lists builds newest first with cursor pagination and a status filter', async () => {
    const ids = [await submit(), await submit(), await submit()];
    await submit('other');
    await h.runner.waitForRuns(1);
    h.runner.runOf(ids[0]!).sink.status('booting');
    const page1 = (await (await call('GET', '/builds?limit=2')).json()) as {
      builds: Json[];
      next_cursor: string;
    };
    expect(page1.builds.map((b) => b.id)).toEqual([ids[2], ids[1]]);
    const page2 = (await (
      await call('GET', `/builds?limit=2&cursor=${page1.next_cursor}`)
    ).json()) as {
      builds: Json[];
      next_cursor: string | null;
    };
    expect(page2.builds.map((b) => b.id)).toEqual([ids[0]]);
    expect(page2.next_cursor).toBeNull();
    const queued = (await (await call('GET', '/builds?status=queued')).json()) as {
      builds: Json[];
    };
    expect(queued.builds.map((b) => b.id)).toEqual([ids[2], ids[1]]);
  });

  it('answers 400 INVALID_CURSOR for a forged cursor', async () => {
    const res = await call('GET', '/builds?cursor=bm9wZQ');
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_CURSOR');
  });

  it('shows the queue position while queued', async () => {
    await submit();
    const second = await submit();
    const body = (await (await call('GET', `/builds/${second}`)).json()) as Json;
    expect(body).toMatchObject({ status: 'queued', queue_position: 1 });
  });

  it('hides builds of other tenants with 404 BUILD_NOT_FOUND on read and cancel', async () => {
    const id = await submit('acme');
    for (const [method, url] of [
      ['GET', `/builds/${id}`],
      ['DELETE', `/builds/${id}`],
      ['GET', `/builds/${id}/logs`],
    ] as const) {
      const res = await call(method, url, 'other');
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(
        'BUILD_NOT_FOUND',
      );
    }
    const list = (await (await call('GET', '/builds', 'other')).json()) as { builds: Json[] };
    expect(list.builds).toEqual([]);
  });

  it('cancels a queued build with DELETE, idempotently', async () => {
    await submit();
    const id = await submit();
    const first = (await (await call('DELETE', `/builds/${id}`)).json()) as Json;
    const again = await call('DELETE', `/builds/${id}`);
    expect(first.status).toBe('cancelled');
    expect(again.status).toBe(202);
    expect(((await again.json()) as Json).status).toBe('cancelled');
  });

  it('answers 404 NOT_FOUND in the error shape for unknown routes', async () => {
    const res = await h.app.request('/nope');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'No such route.' } });
  });
});

describe('secrets API', () => {
  it('stores, lists (ids only), replaces and deletes secrets per tenant', async () => {
    const put = (id: string, value: string, tenant = 'acme') =>
      h.token(tenant).then((t) =>
        h.app.request(`/secrets/${id}`, {
          method: 'PUT',
          body: JSON.stringify({ value }),
          headers: { authorization: `Bearer ${t}`, 'content-type': 'application/json' },
        }),
      );
    expect((await put('npm', 'one')).status).toBe(201);
    expect((await put('npm', 'two')).status).toBe(200);
    const list = await (await call('GET', '/secrets')).text();
    expect(JSON.parse(list)).toMatchObject({ secrets: [{ id: 'npm' }] });
    expect(list).not.toContain('two');
    expect(
      ((await (await call('GET', '/secrets', 'other')).json()) as { secrets: Json[] }).secrets,
    ).toEqual([]);
    expect(h.secrets.values('acme', ['npm'])).toEqual({ npm: 'two' });
    const raw = JSON.stringify(h.db.prepare('SELECT * FROM secrets').all());
    expect(raw).not.toContain('two');
    expect((await call('DELETE', '/secrets/npm', 'other')).status).toBe(404);
    expect((await call('DELETE', '/secrets/npm')).status).toBe(204);
    expect((await call('DELETE', '/secrets/npm')).status).toBe(404);
  });

  it('refuses a body without a string value with 400 INVALID_SECRET', async () => {
    const res = await h.app.request('/secrets/npm', {
      method: 'PUT',
      body: JSON.stringify({ value: 1 }),
      headers: {
        authorization: `Bearer ${await h.token('acme')}`,
        'content-type': 'application/json',
      },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('INVALID_SECRET');
  });
});

describe('ops endpoints', () => {
  it('answers healthz, readyz once recovery is done, and mounts the registry at /v2', async () => {
    expect((await h.app.request('/healthz')).status).toBe(200);
    expect((await h.app.request('/readyz')).status).toBe(200);
    // The real registry: its ping asks for credentials (distribution spec "Authentication").
    const ping = await h.app.request('/v2');
    expect(ping.status).toBe(401);
    expect(ping.headers.get('www-authenticate')).toMatch(/^Bearer realm="[^"]+\/v2\/token"/);
  });

  it('answers readyz 503 before the manager recovered', async () => {
    const fresh = await createHarness({ start: false });
    try {
      expect((await fresh.app.request('/readyz')).status).toBe(503);
    } finally {
      await fresh.close();
    }
  });
});
