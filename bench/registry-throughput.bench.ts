/**
 * Registry throughput: Kiln's registry against Distribution (Debian's `docker-registry`) on
 * loopback, in the same run:
 *
 * - push and pull (skopeo) of a single-layer image of 256 MiB;
 * - push and pull (skopeo) of a 50-layer image (50 × 2 MiB);
 * - a raw GET (curl) of the 256 MiB layer blob.
 *
 * Target for each: Kiln's median time ≤ 0.9× Distribution's. Writes
 * bench/results/registry-throughput.json with every time, the medians and spreads, and a
 * `summary` of `{ name, value, reference, ratio, target, pass, unit, note }` (value: Kiln's
 * median seconds; reference: Distribution's; ratio = value / reference, at most `target`).
 *
 *   npx tsx bench/registry-throughput.bench.ts [--quick] [--rounds N] [--mib M] [--layers L]
 *     [--web-streams]
 *
 * Floors measured in the same rounds, next to the figures (not judged): the raw GET of the same
 * file from a bare node:http server (bench/blob-floor-server.ts: what Node itself costs to move
 * the bytes), skopeo copying the same OCI layouts to a directory with no registry at all
 * (what a pull costs the client alone: reading, hashing and writing the layers), and skopeo
 * pulling the same layouts from a bare node:http registry (bench/registry-floor-server.ts: no
 * auth, no database; what a pull from any registry served by Node costs, Kiln's own part being
 * what it adds on top).
 *
 * `--quick`: 64 MiB, 10 layers, one round. Each round writes fresh images (fresh random bytes,
 * so neither registry can skip an upload through a known blob or a cross-repository mount) and
 * alternates which registry goes first.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { pino } from 'pino';
import { BlobFloorServer } from './blob-floor-server.js';
import {
  freePort,
  tearDownLoopbackRun,
  timedSkopeo,
  timedSkopeoPull,
  waitForPing,
} from './loopback-servers.js';
import { median } from './median.js';
import { RegistryFloorServer } from './registry-floor-server.js';
import { systemClock } from '../common/time/clock.js';
import { ApiTokenService } from '../src/auth/api-token-service.js';
import { loadOrCreateKeys } from '../src/auth/key-store.js';
import { loadConfig } from '../src/config/config.js';
import { createRegistry } from '../src/registry/create-registry.js';
import { RegistryTokenService } from '../src/registry/registry-token-service.js';
import { openDatabase } from '../src/storage/database.js';
import { tarEntry } from '../test/helpers/tar-builder.js';

const execFileAsync = promisify(execFile);

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  return Number.isFinite(v) && v > 0 ? v : def;
}

const QUICK = process.argv.includes('--quick');
const ROUNDS = arg('rounds', QUICK ? 1 : 3);
const MIB = arg('mib', QUICK ? 64 : 256);
const LAYERS = arg('layers', QUICK ? 10 : 50);
const LAYER_MIB = 2;
const GET_REPEATS = 3;
const TARGET = 0.9;
const WEB_STREAMS = process.argv.includes('--web-streams');

/**
 * An OCI layout of one image with `count` layers, each a tar of one `mib`-MiB file of random
 * bytes, gzipped at level 0 (stored). Already gzip, so skopeo pushes the layers as they are
 * (it compresses an uncompressed layer for a registry, which would time its gzip instead).
 */
async function writeImage(dir: string, count: number, mib: number): Promise<{ layer: string }> {
  const blobs = path.join(dir, 'blobs', 'sha256');
  await mkdir(blobs, { recursive: true });
  const put = async (bytes: Buffer) => {
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(path.join(blobs, hex), bytes);
    return { digest: `sha256:${hex}`, size: bytes.length };
  };
  const layers = [];
  for (let i = 0; i < count; i++) {
    const tar = Buffer.concat([
      tarEntry({ name: `layer-${i}.bin`, content: randomBytes(mib * 1024 * 1024) }),
      Buffer.alloc(1024),
    ]);
    const diffId = `sha256:${createHash('sha256').update(tar).digest('hex')}`;
    layers.push({
      mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
      ...(await put(gzipSync(tar, { level: 0 }))),
      diffId,
    });
  }
  const config = await put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
      }),
    ),
  );
  const manifest = await put(
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map(({ mediaType, digest, size }) => ({ mediaType, digest, size })),
      }),
    ),
  );
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          ...manifest,
          annotations: { 'org.opencontainers.image.ref.name': 'latest' },
        },
      ],
    }),
  );
  return { layer: layers[0]?.digest ?? '' };
}

async function timedCurl(url: string, auth: string[]): Promise<number> {
  const start = process.hrtime.bigint();
  const { stdout } = await execFileAsync('curl', [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code} %{size_download}',
    ...auth,
    url,
  ]);
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  const [status] = stdout.trim().split(' ');
  if (status !== '200') {
    const manifest = await execFileAsync('curl', [
      '-sS',
      ...auth,
      '-H',
      'Accept: application/vnd.oci.image.manifest.v1+json',
      url.replace(/blobs\/.*/, 'manifests/latest'),
    ]);
    throw new Error(`GET ${url} answered ${stdout}; manifest ${manifest.stdout}`);
  }
  return seconds;
}

interface Target {
  name: 'kiln' | 'distribution';
  host: string;
  credsArgs: (direction: 'src' | 'dest') => string[];
  curlAuth: string[];
}

const MEASURES = [
  'push single layer',
  'pull single layer',
  'push 50 layers',
  'pull 50 layers',
  'raw blob GET',
] as const;
type Measure = (typeof MEASURES)[number];

/** Same-run floors of some measures (not judged; see the header). */
const FLOORS = {
  'pull single layer': 'skopeo oci layout → dir, no registry',
  'pull 50 layers': 'skopeo oci layout → dir, no registry',
  'raw blob GET': 'curl from a bare node:http server (bench/blob-floor-server.ts)',
} as const satisfies Partial<Record<Measure, string>>;
type Floored = keyof typeof FLOORS;

/** Same-run floors of the pulls in Node (not judged; see the header). */
const NODE_FLOORS = {
  'pull single layer': 'skopeo from a bare node:http registry (bench/registry-floor-server.ts)',
  'pull 50 layers': 'skopeo from a bare node:http registry (bench/registry-floor-server.ts)',
} as const satisfies Partial<Record<Measure, string>>;
type NodeFloored = keyof typeof NODE_FLOORS;

/** `uptime`'s load averages (1, 5, 15 min) when the run began: the machine is shared. */
const LOAD_AT_START = os.loadavg();

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
        curlAuth: ['-u', `bench:${adminToken}`],
      },
      {
        name: 'distribution',
        host: `127.0.0.1:${distPort}`,
        credsArgs: () => [],
        curlAuth: [],
      },
    ];
    const times: Record<Target['name'], Record<Measure, number[]>> = {
      kiln: Object.fromEntries(MEASURES.map((m) => [m, []])) as unknown as Record<
        Measure,
        number[]
      >,
      distribution: Object.fromEntries(MEASURES.map((m) => [m, []])) as unknown as Record<
        Measure,
        number[]
      >,
    };
    const floorTimes: Record<Floored, number[]> = {
      'pull single layer': [],
      'pull 50 layers': [],
      'raw blob GET': [],
    };
    const nodeFloorTimes: Record<NodeFloored, number[]> = {
      'pull single layer': [],
      'pull 50 layers': [],
    };
    const skopeo = (t: Target, from: string, to: string, dir: 'src' | 'dest') =>
      timedSkopeo([
        'copy',
        '--authfile',
        authFile,
        `--${dir}-tls-verify=false`,
        ...t.credsArgs(dir),
        from,
        to,
      ]);

    for (let round = 0; round < ROUNDS; round++) {
      const layoutDir = path.join(root, `image-${round}`);
      const single = await writeImage(layoutDir, 1, MIB);
      const manyDir = path.join(root, `many-${round}`);
      await writeImage(manyDir, LAYERS, LAYER_MIB);
      const order = round % 2 === 0 ? targets : [...targets].reverse();
      for (const t of order) {
        const ref = `docker://${t.host}/library/bench-${round}:latest`;
        const manyRef = `docker://${t.host}/library/many-${round}:latest`;
        const out = path.join(root, `pulled-${t.name}-${round}`);
        const record = (m: Measure, s: number) => times[t.name][m].push(s);
        record('push single layer', await skopeo(t, `oci:${layoutDir}:latest`, ref, 'dest'));
        record('pull single layer', await skopeo(t, ref, `dir:${out}`, 'src'));
        await rm(out, { recursive: true, force: true });
        record('push 50 layers', await skopeo(t, `oci:${manyDir}:latest`, manyRef, 'dest'));
        record('pull 50 layers', await skopeo(t, manyRef, `dir:${out}`, 'src'));
        await rm(out, { recursive: true, force: true });
        const blobUrl = `http://${t.host}/v2/library/bench-${round}/blobs/${single.layer}`;
        for (let i = 0; i < GET_REPEATS; i++) {
          record('raw blob GET', await timedCurl(blobUrl, t.curlAuth));
        }
        console.log(
          `round ${round} ${t.name}: ${MEASURES.map((m) => `${m} ${times[t.name][m].at(-1)?.toFixed(2)} s`).join(', ')}`,
        );
      }
      // The floors, on the same images in the same round.
      const floorOut = path.join(root, `pulled-floor-${round}`);
      const local = (from: string) =>
        timedSkopeo(['copy', `oci:${from}:latest`, `dir:${floorOut}`]).finally(() =>
          rm(floorOut, { recursive: true, force: true }),
        );
      floorTimes['pull single layer'].push(await local(layoutDir));
      floorTimes['pull 50 layers'].push(await local(manyDir));
      const nodeFloorPull = async (layout: string) => {
        const floorRegistry = new RegistryFloorServer(layout);
        const host = await floorRegistry.listen();
        try {
          return await timedSkopeoPull(authFile, `docker://${host}/library/floor:latest`, floorOut);
        } finally {
          await floorRegistry.close();
        }
      };
      nodeFloorTimes['pull single layer'].push(await nodeFloorPull(layoutDir));
      nodeFloorTimes['pull 50 layers'].push(await nodeFloorPull(manyDir));
      const floorServer = new BlobFloorServer(
        path.join(layoutDir, 'blobs', 'sha256', single.layer.replace('sha256:', '')),
      );
      const floorUrl = await floorServer.listen();
      try {
        for (let i = 0; i < GET_REPEATS; i++) {
          floorTimes['raw blob GET'].push(await timedCurl(floorUrl, []));
        }
      } finally {
        await floorServer.close();
      }
      console.log(
        `round ${round} floors: ${Object.keys(FLOORS)
          .map((m) => `${m} ${floorTimes[m as Floored].at(-1)?.toFixed(2)} s`)
          .join(', ')}; from a bare node registry: ${Object.keys(NODE_FLOORS)
          .map((m) => `${m} ${nodeFloorTimes[m as NodeFloored].at(-1)?.toFixed(2)} s`)
          .join(', ')}`,
      );
      await rm(layoutDir, { recursive: true, force: true });
      await rm(manyDir, { recursive: true, force: true });
    }

    const stats = (values: number[]) => ({
      seconds: values.map((v) => Number(v.toFixed(4))),
      median: Number((median(values) ?? Number.NaN).toFixed(4)),
      min: Number(Math.min(...values).toFixed(4)),
      max: Number(Math.max(...values).toFixed(4)),
    });
    const details = Object.fromEntries(
      MEASURES.map((m) => [
        m,
        { kiln: stats(times.kiln[m]), distribution: stats(times.distribution[m]) },
      ]),
    );
    const summary = MEASURES.map((m) => {
      const value = median(times.kiln[m]) ?? Number.NaN;
      const reference = median(times.distribution[m]) ?? Number.NaN;
      const ratio = value / reference;
      const label = m.replace('50 layers', `${LAYERS} layers`);
      const floor = m in FLOORS ? (median(floorTimes[m as Floored]) ?? undefined) : undefined;
      const nodeFloor =
        m in NODE_FLOORS ? (median(nodeFloorTimes[m as NodeFloored]) ?? undefined) : undefined;
      return {
        name: `registry ${label}`,
        value: Number(value.toFixed(4)),
        reference: Number(reference.toFixed(4)),
        ratio: Number(ratio.toFixed(3)),
        target: TARGET,
        pass: ratio <= TARGET,
        unit: 's',
        note:
          'Kiln vs Distribution (docker-registry), median time' +
          (floor === undefined
            ? ''
            : `; floor (${FLOORS[m as Floored]}) ${floor.toFixed(3)} s, ${(floor / reference).toFixed(2)}× Distribution`) +
          (nodeFloor === undefined
            ? ''
            : `; Node floor (${NODE_FLOORS[m as NodeFloored]}) ${nodeFloor.toFixed(3)} s, ${(nodeFloor / reference).toFixed(2)}× Distribution`),
      };
    });
    const result = {
      benchmark: 'registry-throughput',
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadavgAtStart: LOAD_AT_START,
        loadavgAtEnd: os.loadavg(),
      },
      quick: QUICK,
      imageMiB: MIB,
      layers: { count: LAYERS, mib: LAYER_MIB },
      rawGetRepeats: GET_REPEATS,
      kilnRequestBodies: WEB_STREAMS ? 'web streams (Readable.fromWeb)' : 'node IncomingMessage',
      layer: 'tar layers of random bytes, gzip level 0 (stored)',
      rounds: ROUNDS,
      client: `${(await execFileAsync('skopeo', ['--version'])).stdout.trim()}; ${(await execFileAsync('curl', ['--version'])).stdout.split('\n')[0]}`,
      pass: summary.every((s) => s.pass),
      summary,
      details,
      floors: Object.fromEntries(
        Object.entries(FLOORS).map(([m, what]) => [
          m,
          { what, ...stats(floorTimes[m as Floored]) },
        ]),
      ),
      nodeFloors: Object.fromEntries(
        Object.entries(NODE_FLOORS).map(([m, what]) => [
          m,
          { what, ...stats(nodeFloorTimes[m as NodeFloored]) },
        ]),
      ),
    };
    const outFile = path.join(import.meta.dirname, 'results', 'registry-throughput.json');
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
    console.table(summary);
    if (!result.pass) process.exitCode = 1;
  } finally {
    await tearDownLoopbackRun({ server, closeKiln, distribution, root });
  }
}

await main();
