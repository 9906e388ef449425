import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eClient, type BuildView } from '../helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../helpers/e2e-daemon.js';
import { writeSourceTarball, type TestSource } from '../helpers/e2e-source.js';

const run = promisify(execFile);

const ENV = {
  KILN_MAX_CONCURRENT_BUILDS: '2',
  KILN_DEFAULT_MEMORY_MB: '1024',
  KILN_DEFAULT_CPUS: '1',
  KILN_SCRATCH_BYTES: '4G',
  KILN_CACHE_DISK_BYTES: '2G',
  KILN_BOOT_TIMEOUT_SECONDS: '180',
};

/**
 * Appends `line-<RUN_ID>` to a file in a cache mount and prints the file; fails after
 * appending when RUN_ID is "fail". SLEEP holds the build in `building` (the crash test).
 */
const DOCKERFILE = [
  'FROM busybox',
  'ARG RUN_ID',
  'ARG SLEEP=0',
  'RUN --mount=type=cache,target=/root/.cache/x sh -c \'echo "line-$RUN_ID" >> /root/.cache/x/log; echo "cache-log-begin"; cat /root/.cache/x/log; echo "cache-log-end"; sleep "$SLEEP"; test "$RUN_ID" != fail\'',
  '',
].join('\n');

/**
 * The lines the build printed from its cache file: the last block between the marker lines
 * (the engine also echoes the RUN command, markers included, inside longer lines).
 */
function cacheLines(logs: string): string[] {
  const lines = logs.split('\n').map((l) => l.trim());
  const begin = lines.lastIndexOf('cache-log-begin');
  const end = lines.indexOf('cache-log-end', begin);
  if (begin < 0 || end < 0) return [];
  return lines.slice(begin + 1, end).filter((l) => l.startsWith('line-'));
}

interface CacheView {
  scope: string;
  size_bytes: number;
  used_bytes: number;
  last_commit_build_id: string | null;
  last_build_id: string | null;
}

async function api(
  daemon: E2eDaemon,
  token: string,
  method: string,
  url: string,
): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${daemon.url}${url}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : (JSON.parse(text) as unknown) };
}

async function caches(daemon: E2eDaemon, token: string): Promise<CacheView[]> {
  const { body } = await api(daemon, token, 'GET', '/caches');
  return (body as { caches: CacheView[] }).caches;
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** The committed disk file of acme/main and its forks directory. */
function scopeDir(daemon: E2eDaemon, tenant: string, scope: string): string {
  return path.join(daemon.dataDir, 'caches', tenant, scope);
}

async function forks(daemon: E2eDaemon, tenant: string, scope: string): Promise<string[]> {
  return readdir(path.join(scopeDir(daemon, tenant, scope), 'forks')).catch(() => []);
}

describe('persistent cache disks, end to end', () => {
  let daemon: E2eDaemon | undefined;
  let work: string;
  let src: TestSource;
  let token: string;
  let client: E2eClient;

  const build = async (runId: string, extra: Record<string, string> = {}): Promise<BuildView> =>
    client.submit(src.path, {
      cache_scope: 'main',
      build_args: JSON.stringify({ RUN_ID: runId, ...extra }),
    });

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-caches-'));
    src = await writeSourceTarball(path.join(work, 'src.tar.gz'), { Dockerfile: DOCKERFILE });
    daemon = await startE2eDaemon({ env: ENV });
    await seedBaseImage(daemon, await daemon.token('operator', ['registry:admin']));
    token = await daemon.token('acme', ['builds:write', 'builds:read']);
    client = new E2eClient(daemon, token);
  }, 300_000);

  afterAll(async () => {
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  });

  it('a second build sees what the first left in its cache mount; a failed third commits nothing', async () => {
    const d = daemon!;
    const first = await client.waitFor((await build('one')).id);
    expect(first.status, JSON.stringify(first.error)).toBe('ready');
    expect(cacheLines(await client.logs(first.id))).toEqual(['line-one']);

    const second = await client.waitFor((await build('two')).id);
    expect(second.status, JSON.stringify(second.error)).toBe('ready');
    const secondLogs = await client.logs(second.id);
    expect(secondLogs).toContain('cache disk for scope "main": warm');
    expect(cacheLines(secondLogs)).toEqual(['line-one', 'line-two']);
    const committed = path.join(scopeDir(d, 'acme', 'main'), `disk-${second.id}.img`);
    const before = await sha256File(committed);

    const third = await client.waitFor((await build('fail')).id);
    expect(third.status).toBe('failed');
    expect(cacheLines(await client.logs(third.id))).toEqual(['line-one', 'line-two', 'line-fail']);
    expect(await sha256File(committed)).toBe(before);
    const [disk] = await caches(d, token);
    expect(disk).toMatchObject({
      scope: 'main',
      size_bytes: 2 * 1024 ** 3,
      last_commit_build_id: second.id,
      last_build_id: third.id,
    });
    expect(disk!.used_bytes).toBeGreaterThan(0);
    expect(await forks(d, 'acme', 'main')).toEqual([]);

    const metrics = await (await fetch(`${d.url}/metrics`)).text();
    expect(metrics).toMatch(/kiln_cache_attaches_total\{result="hit"\} 2/);
    expect(metrics).toMatch(/kiln_cache_attaches_total\{result="miss"\} 1/);
    expect(metrics).toMatch(/kiln_cache_disks 1/);
  }, 900_000);

  it('two concurrent builds of one scope each succeed on their own fork; the committed disk is one of theirs and intact', async () => {
    const d = daemon!;
    const [a, b] = await Promise.all([build('c1'), build('c2')]);
    const [doneA, doneB] = await Promise.all([client.waitFor(a.id), client.waitFor(b.id)]);
    expect(doneA.status, JSON.stringify(doneA.error)).toBe('ready');
    expect(doneB.status, JSON.stringify(doneB.error)).toBe('ready');
    // Each saw the committed lines plus only its own.
    expect(cacheLines(await client.logs(a.id))).toEqual(['line-one', 'line-two', 'line-c1']);
    expect(cacheLines(await client.logs(b.id))).toEqual(['line-one', 'line-two', 'line-c2']);
    const [disk] = await caches(d, token);
    expect([a.id, b.id]).toContain(disk!.last_commit_build_id);
    const dir = scopeDir(d, 'acme', 'main');
    expect((await readdir(dir)).sort()).toEqual([
      `disk-${disk!.last_commit_build_id}.img`,
      'forks',
    ]);
    await run('e2fsck', ['-n', '-f', path.join(dir, `disk-${disk!.last_commit_build_id}.img`)]);
    expect(await forks(d, 'acme', 'main')).toEqual([]);
  }, 900_000);

  it('tenant B cannot see, attach, prune or delete tenant A’s disk', async () => {
    const d = daemon!;
    const other = await d.token('beta', ['builds:write', 'builds:read']);
    expect(await caches(d, other)).toEqual([]);
    expect((await api(d, other, 'POST', '/caches/main/prune')).status).toBe(404);
    expect((await api(d, other, 'DELETE', '/caches/main')).status).toBe(404);
    // The same scope name in tenant B is B's own, new disk.
    const theirs = new E2eClient(d, other);
    const built = await theirs.waitFor(
      (
        await theirs.submit(src.path, {
          cache_scope: 'main',
          build_args: JSON.stringify({ RUN_ID: 'beta' }),
        })
      ).id,
    );
    expect(built.status, JSON.stringify(built.error)).toBe('ready');
    const logs = await theirs.logs(built.id);
    expect(logs).toContain('cache disk for scope "main": cold (new disk)');
    expect(cacheLines(logs)).toEqual(['line-beta']);
    expect((await caches(d, token))[0]?.last_commit_build_id).not.toBe(built.id);
  }, 900_000);

  it('kill -9 of the daemon mid-build leaves the committed disk unchanged and no fork behind', async () => {
    let d = daemon!;
    const [disk] = await caches(d, token);
    const committed = path.join(
      scopeDir(d, 'acme', 'main'),
      `disk-${disk!.last_commit_build_id}.img`,
    );
    const before = await sha256File(committed);
    const submitted = await build('crash', { SLEEP: '20' });
    await client.waitFor(submitted.id, (b) => b.status === 'building');
    expect(await forks(d, 'acme', 'main')).toEqual([`${submitted.id}.img`]);

    await d.kill9();
    const dataDir = d.dataDir;
    daemon = undefined;
    d = await startE2eDaemon({ dataDir, env: ENV });
    daemon = d;
    client = new E2eClient(d, token);
    expect(d.logLines.find((l) => l.msg === 'removed cache forks left by a crash')).toMatchObject({
      removedForks: 1,
    });
    expect(await sha256File(committed)).toBe(before);
    // The re-queued run would commit only once it is ready: stop it.
    await client.cancel(submitted.id);
    const ended = await client.waitFor(submitted.id);
    expect(ended.status).toBe('cancelled');
    expect(await sha256File(committed)).toBe(before);
    expect(await forks(d, 'acme', 'main')).toEqual([]);
    expect((await caches(d, token))[0]?.last_commit_build_id).toBe(disk!.last_commit_build_id);
  }, 900_000);
});
