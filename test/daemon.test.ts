import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from './helpers/api-server.js';
import { FakeBuildRunner, okOutcome } from './helpers/fake-build-runner.js';
import { ManualClock } from './helpers/manual-clock.js';
import { sampleTar } from './helpers/tar-builder.js';
import { loadConfig } from '../src/config/config.js';
import { createDaemon, type Daemon } from '../src/daemon.js';
import { createLogger } from '../src/telemetry/create-logger.js';

/** The fake runner, recording when the daemon closes it. */
class RecordingRunner extends FakeBuildRunner {
  failClose = false;
  override close(): Promise<void> {
    this.events.push('runner closed');
    return this.failClose ? Promise.reject(new Error('runner close failed')) : super.close();
  }
}

/** JSON log lines, collected in memory. */
class LogLines extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (line !== '') this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

const dirs: string[] = [];
const daemons: Daemon[] = [];
afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function daemon(
  options: { env?: Record<string, string>; runner?: FakeBuildRunner; logs?: LogLines } = {},
) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-daemon-'));
  dirs.push(dataDir);
  const config = loadConfig({
    KILN_DATA_DIR: dataDir,
    KILN_HOST: '127.0.0.1',
    KILN_PORT: '0',
    ...options.env,
  });
  const time = new ManualClock();
  const runner = options.runner ?? new RecordingRunner();
  const d = await createDaemon(config, {
    logger: createLogger('debug', options.logs ?? new LogLines()),
    clock: time,
    scheduler: time,
    runner,
  });
  daemons.push(d);
  return { d, runner, time };
}

function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => {
      resolve(true);
    });
  });
}

async function submit(d: Daemon, url: string): Promise<string> {
  const token = await d.apiTokens.create({
    tenant: 'acme',
    scopes: ['builds:write', 'builds:read'],
    ttlSeconds: 600,
  });
  const fd = new FormData();
  fd.append('source', new Blob([sampleTar()]), 'app.tar');
  const res = await fetch(`${url}/builds`, {
    method: 'POST',
    body: fd,
    headers: { authorization: `Bearer ${token}` },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

describe('createDaemon', () => {
  it('listens on start, names the bound port and serves the API there', async () => {
    const { d } = await daemon();
    const address = await d.start();
    expect(address.url).toBe(`http://127.0.0.1:${address.port}`);
    expect(address.port).toBeGreaterThan(0);
    expect((await fetch(`${address.url}/readyz`)).status).toBe(200);
  });

  it('answers on the IPv6 loopback when bound to the IPv6 wildcard', async () => {
    const { d } = await daemon({ env: { KILN_HOST: '::' } });
    const address = await d.start();
    expect(address.host).toBe('::1');
    expect(address.url).toBe(`http://[::1]:${address.port}`);
    expect((await fetch(`${address.url}/healthz`)).status).toBe(200);
  });

  it('puts the bound port into image refs when KILN_PORT=0 and no public URL is set', async () => {
    const { d, runner } = await daemon();
    const { url, port } = await d.start();
    const id = await submit(d, url);
    await runner.waitForRuns(1);
    runner.runOf(id).finish(okOutcome(`acme/${id}:${id}`));
    await eventually(() => d.store.get(id)?.status === 'ready');
    expect(d.store.get(id)?.result?.imageRef).toBe(`127.0.0.1:${port}/acme/${id}:${id}`);
  });

  it('closes in order: server, builds (their runs ended), registry and runner, database', async () => {
    const { d, runner } = await daemon();
    const { url, port } = await d.start();
    const id = await submit(d, url);
    await runner.waitForRuns(1);
    await d.close();
    expect(await refused(port)).toBe(true);
    expect(runner.events.slice(-2)).toEqual([`end:${id}`, 'runner closed']);
    expect(d.db.open).toBe(false);
  });

  it('can be closed twice, and before it was started', async () => {
    const { d, runner } = await daemon();
    const first = d.close();
    const second = d.close();
    await Promise.all([first, second]);
    expect(second).toBe(first);
    expect(runner.events.filter((e) => e === 'runner closed')).toHaveLength(1);
    expect(d.db.open).toBe(false);
  });

  it('runs every later step when one fails and reports the failure', async () => {
    const runner = new RecordingRunner();
    runner.failClose = true;
    const { d } = await daemon({ runner });
    const { port } = await d.start();
    await expect(d.close()).rejects.toThrow(AggregateError);
    expect(await refused(port)).toBe(true);
    expect(d.db.open).toBe(false);
  });

  it('logs registry lines with the request id of the API request that caused them', async () => {
    const logs = new LogLines();
    const { d } = await daemon({ logs });
    await d.start();
    const token = await d.apiTokens.create({
      tenant: 'acme',
      scopes: ['registry:pull'],
      ttlSeconds: 600,
    });
    // An unexpected failure inside a registry handler: its store has lost the database.
    d.db.close();
    const res = await d.app.request('/v2/acme/web/tags/list', {
      headers: {
        authorization: `Basic ${Buffer.from(`kiln:${token}`).toString('base64')}`,
        'x-request-id': 'req-registry-1',
      },
    });
    expect(res.status).toBe(500);
    const line = logs.lines.find((l) => l.msg === 'registry: request failed');
    expect(line).toMatchObject({ reqId: 'req-registry-1', component: 'registry' });
  });
});
