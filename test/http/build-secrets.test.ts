import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { okOutcome } from '../helpers/fake-build-runner.js';
import { sampleTar } from '../helpers/tar-builder.js';

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0).reverse()) await h.close();
});

async function harness(options: Parameters<typeof createHarness>[0] = {}): Promise<Harness> {
  const h = await createHarness(options);
  open.push(h);
  return h;
}

/** A multipart body in the order given: fields as [name, value], then the source last. */
function form(parts: [string, string][], sourceFirst = false): FormData {
  const fd = new FormData();
  if (sourceFirst) fd.append('source', new Blob([sampleTar()]), 'app.tar');
  for (const [k, v] of parts) fd.append(k, v);
  if (!sourceFirst) fd.append('source', new Blob([sampleTar()]), 'app.tar');
  return fd;
}

async function post(h: Harness, body: FormData): Promise<Response> {
  return h.app.request('/builds', {
    method: 'POST',
    body,
    headers: { authorization: `Bearer ${await h.token('acme')}` },
  });
}

/** Every file under `dir`, recursively (the SQLite file, its WAL, keys, uploads, …). */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((rel) => path.join(dir, rel))
    .filter((file) => statSync(file).isFile());
}

function dataDirHolds(h: Harness, needle: string): string[] {
  return filesUnder(h.dataDir).filter((file) => readFileSync(file).includes(needle));
}

async function expectRefused(h: Harness, res: Response, code: string): Promise<void> {
  const body = (await res.json()) as { error: { code: string; message: string } };
  expect({ status: res.status, code: body.error.code }).toEqual({ status: 400, code });
  expect(h.buildDirs()).toEqual([]);
  expect(h.buildRows()).toBe(0);
}

describe('per-build secrets (secret.<id> parts)', () => {
  it('hands the value to the runner next to stored secrets and writes it nowhere on disk', async () => {
    const h = await harness();
    h.secrets.put('acme', 'npmrc', 'stored-value-8d1f');
    const res = await post(
      h,
      form([
        ['secrets', '["npmrc"]'],
        ['secret.token', 'per-build-value-93a7c2'],
      ]),
    );
    expect(res.status).toBe(202);
    const { id } = (await res.json()) as { id: string };
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    expect(run.input.secrets).toEqual({
      npmrc: 'stored-value-8d1f',
      token: 'per-build-value-93a7c2',
    });
    expect(run.input.build.request.buildSecretIds).toEqual(['token']);
    run.finish(okOutcome(`acme/${id}:${id}`));
    await new Promise((resolve) => setImmediate(resolve));
    h.db.pragma('wal_checkpoint(TRUNCATE)');
    expect(dataDirHolds(h, 'per-build-value-93a7c2')).toEqual([]);
    const shown = await h.app.request(`/builds/${id}`, {
      headers: { authorization: `Bearer ${await h.token('acme')}` },
    });
    expect(await shown.text()).not.toContain('per-build-value-93a7c2');
  });

  it('refuses a secret part sent after the source', async () => {
    const h = await harness();
    const res = await post(h, form([['secret.token', 'v']], true));
    await expectRefused(h, res, 'INVALID_BUILD_SECRET');
  });

  it('refuses a bad id, a repeated id, an oversized value and too many secrets', async () => {
    const h = await harness();
    await expectRefused(h, await post(h, form([['secret.-bad', 'v']])), 'INVALID_BUILD_SECRET');
    await expectRefused(
      h,
      await post(
        h,
        form([
          ['secret.a', '1'],
          ['secret.a', '2'],
        ]),
      ),
      'INVALID_BUILD_SECRET',
    );
    await expectRefused(
      h,
      await post(h, form([['secret.big', 'x'.repeat(64 * 1024 + 1)]])),
      'INVALID_BUILD_SECRET',
    );
    const many = Array.from({ length: 33 }, (_, i): [string, string] => [`secret.s${i}`, 'v']);
    await expectRefused(h, await post(h, form(many)), 'INVALID_BUILD_SECRET');
  });

  it('refuses a per-build secret named like a stored secret the build asks for, in either order', async () => {
    const h = await harness();
    h.secrets.put('acme', 'npmrc', 'stored');
    await expectRefused(
      h,
      await post(
        h,
        form([
          ['secrets', '["npmrc"]'],
          ['secret.npmrc', 'mine'],
        ]),
      ),
      'SECRET_CONFLICT',
    );
    await expectRefused(
      h,
      await post(
        h,
        form([
          ['secret.npmrc', 'mine'],
          ['secrets', '["npmrc"]'],
        ]),
      ),
      'SECRET_CONFLICT',
    );
  });

  it('fails builds holding per-build secrets with build_secrets_lost after a restart', async () => {
    const first = await harness({ env: { KILN_MAX_CONCURRENT_BUILDS: '1' } });
    const submit = async (parts: [string, string][]) => {
      const res = await post(first, form(parts));
      expect(res.status).toBe(202);
      return ((await res.json()) as { id: string }).id;
    };
    const running = await submit([['secret.token', 'v1']]);
    const queued = await submit([['secret.token', 'v2']]);
    const plain = await submit([]);
    await first.runner.waitForRuns(1);
    await first.stop();
    open.splice(open.indexOf(first), 1);
    const second = await harness({ dataDir: first.dataDir });
    for (const id of [running, queued]) {
      expect(second.store.get(id)?.status).toBe('failed');
      expect(second.store.get(id)?.failure?.code).toBe('build_secrets_lost');
    }
    await second.runner.waitForRuns(1);
    expect(second.runner.runs.map((r) => r.input.build.id)).toEqual([plain]);
  });
});
