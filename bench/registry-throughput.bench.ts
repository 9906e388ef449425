/**
 * Registry throughput: push and pull a 256 MiB single-layer image with skopeo into Kiln's
 * registry and into Distribution (Debian's `docker-registry`), in the same run, and write the
 * time ratios to bench/results/registry-throughput.json.
 *
 *   npx tsx bench/registry-throughput.bench.ts [--rounds N] [--mib M] [--web-streams]
 *
 * Each round writes a fresh image (fresh random bytes, so neither registry can skip the upload
 * through a known blob or a cross-repository mount) and alternates which registry goes first.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { pino } from 'pino';
import { median } from './median.js';
import { systemClock } from '../common/time/clock.js';
import { ApiTokenService } from '../src/auth/api-token-service.js';
import { loadOrCreateKeys } from '../src/auth/key-store.js';
import { loadConfig } from '../src/config/config.js';
import { createRegistry } from '../src/registry/create-registry.js';
import { RegistryTokenService } from '../src/registry/registry-token-service.js';
import { openDatabase } from '../src/storage/database.js';
import { writeOciLayout } from '../test/helpers/registry-oci-layout.js';

const execFileAsync = promisify(execFile);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  return Number.isFinite(v) && v > 0 ? v : def;
}

const ROUNDS = arg('rounds', 3);
const MIB = arg('mib', 256);
const WEB_STREAMS = process.argv.includes('--web-streams');

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => {
        resolve(port);
      });
    });
  });
}

async function waitForPing(url: string, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function timed(args: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  await execFileAsync('skopeo', args, { maxBuffer: 16 * 1024 * 1024 });
  return Number(process.hrtime.bigint() - start) / 1e9;
}

interface Target {
  name: 'kiln' | 'distribution';
  host: string;
  credsArgs: (direction: 'src' | 'dest') => string[];
}

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-registry-'));
  const authFile = path.join(root, 'auth.json');
  await writeFile(authFile, '{}');
  let distribution: ChildProcess | null = null;
  let server: ServerType | null = null;
  let closeKiln: (() => Promise<void>) | null = null;
  try {
    // Kiln: the real registry on the real clock, wired like the daemon does.
    const dataDir = path.join(root, 'kiln');
    await mkdir(dataDir);
    const config = loadConfig({ KILN_DATA_DIR: dataDir });
    const keys = await loadOrCreateKeys(dataDir);
    const db = openDatabase(path.join(dataDir, 'kiln.db'));
    const apiTokens = new ApiTokenService({ key: keys.api, clock: systemClock });
    const registry = await createRegistry({
      db,
      dataDir,
      tokens: new RegistryTokenService({
        key: keys.registry,
        audience: config.registry.service,
        clock: systemClock,
      }),
      config,
      clock: systemClock,
      logger: pino({ level: 'warn' }),
      buildActivity: { isAttemptRunning: () => true },
      apiTokens,
    });
    const kilnPort = await freePort();
    const kilnApp = new Hono().route('/v2', registry.app);
    server = serve({
      // --web-streams: hide the node bindings (c.env.incoming) the way a handler wrapper that
      // calls app.fetch(request) without env does, so bodies go through Readable.fromWeb.
      fetch: WEB_STREAMS ? (request) => kilnApp.fetch(request) : kilnApp.fetch,
      hostname: '127.0.0.1',
      port: kilnPort,
    });
    closeKiln = async () => {
      await registry.close();
      db.close();
    };
    const adminToken = await apiTokens.create({
      tenant: 'ops',
      scopes: ['registry:admin'],
      ttlSeconds: 3600,
    });

    // Distribution: Debian's docker-registry with a temp config and storage, no auth.
    const distPort = await freePort();
    const distConfig = path.join(root, 'distribution.yml');
    await writeFile(
      distConfig,
      [
        'version: 0.1',
        'log: { level: error }',
        'storage:',
        `  filesystem: { rootdirectory: ${path.join(root, 'distribution-data')} }`,
        '  delete: { enabled: true }',
        `http: { addr: "127.0.0.1:${distPort}" }`,
        '',
      ].join('\n'),
    );
    distribution = spawn('docker-registry', ['serve', distConfig], { stdio: 'ignore' });
    await waitForPing(`http://127.0.0.1:${distPort}/v2/`, 15_000);
    await waitForPing(`http://127.0.0.1:${kilnPort}/v2/`, 15_000);

    const targets: Target[] = [
      {
        name: 'kiln',
        host: `127.0.0.1:${kilnPort}`,
        credsArgs: (d) => [`--${d}-creds`, `bench:${adminToken}`],
      },
      { name: 'distribution', host: `127.0.0.1:${distPort}`, credsArgs: () => [] },
    ];
    const times: Record<Target['name'], { push: number[]; pull: number[] }> = {
      kiln: { push: [], pull: [] },
      distribution: { push: [], pull: [] },
    };

    for (let round = 0; round < ROUNDS; round++) {
      const layoutDir = path.join(root, `image-${round}`);
      const layout = await writeOciLayout(
        layoutDir,
        { payload: randomBytes(MIB * 1024 * 1024) },
        { uncompressed: true },
      );
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const ref = `docker://${t.host}/library/bench-${round}:latest`;
        const push = await timed([
          'copy',
          '--authfile',
          authFile,
          '--dest-tls-verify=false',
          ...t.credsArgs('dest'),
          `oci:${layout.dir}:latest`,
          ref,
        ]);
        const out = path.join(root, `pulled-${t.name}-${round}`);
        const pull = await timed([
          'copy',
          '--authfile',
          authFile,
          '--src-tls-verify=false',
          ...t.credsArgs('src'),
          ref,
          `dir:${out}`,
        ]);
        await rm(out, { recursive: true, force: true });
        times[t.name].push.push(push);
        times[t.name].pull.push(pull);
        console.log(
          `round ${round} ${t.name}: push ${push.toFixed(2)} s, pull ${pull.toFixed(2)} s`,
        );
      }
      await rm(layoutDir, { recursive: true, force: true });
    }

    const summary = (name: Target['name']) => ({
      pushSeconds: times[name].push,
      pullSeconds: times[name].pull,
      pushMedianSeconds: median(times[name].push) ?? Number.NaN,
      pullMedianSeconds: median(times[name].pull) ?? Number.NaN,
      pushMiBPerSecond: MIB / (median(times[name].push) ?? Number.NaN),
      pullMiBPerSecond: MIB / (median(times[name].pull) ?? Number.NaN),
    });
    const kiln = summary('kiln');
    const dist = summary('distribution');
    const result = {
      benchmark: 'registry-throughput',
      date: new Date().toISOString(),
      machine: { cpus: os.cpus().length, node: process.version },
      imageMiB: MIB,
      kilnRequestBodies: WEB_STREAMS ? 'web streams (Readable.fromWeb)' : 'node IncomingMessage',
      layer: 'one uncompressed tar layer of random bytes',
      rounds: ROUNDS,
      client: (await execFileAsync('skopeo', ['--version'])).stdout.trim(),
      kiln,
      distribution: dist,
      ratios: {
        /** < 1 means Kiln is faster. */
        pushKilnOverDistribution: kiln.pushMedianSeconds / dist.pushMedianSeconds,
        pullKilnOverDistribution: kiln.pullMedianSeconds / dist.pullMedianSeconds,
      },
    };
    const outFile = path.join(import.meta.dirname, 'results', 'registry-throughput.json');
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify(result.ratios));
  } finally {
    if (server !== null) {
      const s = server;
      await new Promise<void>((resolve) => {
        s.close(() => {
          resolve();
        });
      });
    }
    if (closeKiln !== null) await closeKiln();
    if (distribution !== null) {
      const d = distribution;
      if (d.exitCode === null && d.signalCode === null) {
        const exited = new Promise<void>((resolve) => {
          d.once('exit', () => {
            resolve();
          });
        });
        d.kill('SIGTERM');
        await exited;
      }
    }
    await rm(root, { recursive: true, force: true });
  }
}

await main();
