/**
 * The pull-through mirror: a cold pull through Kiln's mirror (Kiln fetches from the upstream
 * while it streams to the client) against `skopeo copy` straight from the same upstream, and
 * a warm pull (everything stored) from Kiln against the same pull from the upstream. The
 * upstream is Debian's `docker-registry` (Distribution) on loopback; the image is a generated
 * stand-in of node:22-slim's shape (a two-platform index; the amd64 image has five
 * uncompressed layers, 75 MiB in all). Writes bench/results/mirror.json.
 *
 *   npx tsx bench/mirror.bench.ts [--rounds N] [--quick]
 *
 * Each round pushes a fresh image (fresh random bytes, so the mirror holds none of it) and
 * alternates whether the direct pull runs before or after Kiln's two. The cold pull's floor is
 * measured in the same round: the direct pull again, while a bare Node loop fetches the same
 * blobs from Distribution, hashes and fsyncs them (storeImageFloor) — what any verifying,
 * storing mirror adds to a cold pull on these cores and this disk, with no registry logic.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { pino } from 'pino';
import { create as createTar } from 'tar';
import { freePort, tearDownLoopbackRun, timedSkopeoPull, waitForPing } from './loopback-servers.js';
import { median } from './median.js';
import { storeImageFloor } from './mirror-store-floor.js';
import { systemClock } from '../common/time/clock.js';
import { ApiTokenService } from '../src/auth/api-token-service.js';
import { loadOrCreateKeys } from '../src/auth/key-store.js';
import { loadConfig } from '../src/config/config.js';
import { parseMirrorConfig } from '../src/config/mirror-config.js';
import { createRegistry } from '../src/registry/create-registry.js';
import { RegistryTokenService } from '../src/registry/registry-token-service.js';
import { openDatabase } from '../src/storage/database.js';

const execFileAsync = promisify(execFile);

const QUICK = process.argv.includes('--quick');

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : def;
  return Number.isFinite(v) && v > 0 ? v : def;
}

const ROUNDS = QUICK ? 1 : arg('rounds', 5);
/** Layer sizes of the amd64 image, MiB (node:22-slim's five layers are about 75 MiB). */
const LAYER_MIB = QUICK ? [4, 2, 1] : [40, 20, 10, 4, 1];
const TARGET_COLD = 1.2;
const TARGET_WARM = 0.9;

async function writeBlob(dir: string, bytes: Buffer): Promise<{ digest: string; size: number }> {
  const hex = createHash('sha256').update(bytes).digest('hex');
  await writeFile(path.join(dir, 'blobs', 'sha256', hex), bytes);
  return { digest: `sha256:${hex}`, size: bytes.length };
}

/** One platform's image: uncompressed tar layers of random files, a config, a manifest. */
async function writeImage(
  dir: string,
  arch: string,
  layerMiB: readonly number[],
): Promise<{ digest: string; size: number }> {
  const layers: { digest: string; size: number }[] = [];
  for (const [i, mib] of layerMiB.entries()) {
    const staging = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-layer-'));
    try {
      await writeFile(path.join(staging, `layer-${i}`), randomBytes(mib * 1024 * 1024));
      const tarFile = path.join(staging, 'layer.tar');
      await createTar({ file: tarFile, cwd: staging, portable: true, mtime: new Date(0) }, [
        `layer-${i}`,
      ]);
      layers.push(await writeBlob(dir, await readFile(tarFile)));
    } finally {
      await rm(staging, { recursive: true, force: true });
    }
  }
  const config = await writeBlob(
    dir,
    Buffer.from(
      JSON.stringify({
        architecture: arch,
        os: 'linux',
        config: { Cmd: ['node'] },
        rootfs: { type: 'layers', diff_ids: layers.map((l) => l.digest) },
      }),
    ),
  );
  return writeBlob(
    dir,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
        layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
      }),
    ),
  );
}

/** An OCI layout whose `22-slim` is an index over amd64 (the measured one) and a small arm64. */
async function writeNodeStandIn(dir: string): Promise<void> {
  await mkdir(path.join(dir, 'blobs', 'sha256'), { recursive: true });
  const amd64 = await writeImage(dir, 'amd64', LAYER_MIB);
  const arm64 = await writeImage(dir, 'arm64', [1]);
  const manifest = 'application/vnd.oci.image.manifest.v1+json';
  const index = await writeBlob(
    dir,
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          { mediaType: manifest, ...amd64, platform: { architecture: 'amd64', os: 'linux' } },
          { mediaType: manifest, ...arm64, platform: { architecture: 'arm64', os: 'linux' } },
        ],
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
          mediaType: 'application/vnd.oci.image.index.v1+json',
          ...index,
          annotations: { 'org.opencontainers.image.ref.name': '22-slim' },
        },
      ],
    }),
  );
}

function spread(values: readonly number[]): { min: number; max: number } {
  return { min: Math.min(...values), max: Math.max(...values) };
}

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-mirror-'));
  const authFile = path.join(root, 'auth.json');
  await writeFile(authFile, '{}');
  let distribution: ChildProcess | null = null;
  let server: ServerType | null = null;
  let closeKiln: (() => Promise<void>) | null = null;
  const loadBefore = os.loadavg();
  try {
    // Distribution: Debian's docker-registry with a temp config and storage, no auth.
    const distPort = await freePort();
    const distConfig = path.join(root, 'distribution.yml');
    await writeFile(
      distConfig,
      [
        'version: 0.1',
        'log: { level: error, accesslog: { disabled: true } }',
        'storage:',
        `  filesystem: { rootdirectory: ${path.join(root, 'distribution-data')} }`,
        `http: { addr: "127.0.0.1:${distPort}" }`,
        '',
      ].join('\n'),
    );
    distribution = spawn('docker-registry', ['serve', distConfig], { stdio: 'ignore' });
    const distHost = `127.0.0.1:${distPort}`;
    await waitForPing(`http://${distHost}/v2/`, 15_000);

    // Kiln: the real registry on the real clock, its mirror's docker.io is the Distribution.
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
      mirror: parseMirrorConfig({
        KILN_MIRROR_UPSTREAMS: `docker.io=http://${distHost}`,
        KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io',
      }),
    });
    const kilnPort = await freePort();
    server = serve({
      fetch: new Hono().route('/v2', registry.app).fetch,
      hostname: '127.0.0.1',
      port: kilnPort,
    });
    closeKiln = async () => {
      await registry.close();
      db.close();
    };
    const kilnHost = `127.0.0.1:${kilnPort}`;
    await waitForPing(`http://${kilnHost}/v2/`, 15_000);
    const pullToken = await apiTokens.create({
      tenant: 'bench',
      scopes: ['registry:pull'],
      ttlSeconds: 3600,
    });

    const pull = (source: string, creds: string[], name: string): Promise<number> =>
      timedSkopeoPull(authFile, source, path.join(root, `pulled-${name}`), creds);
    const times = {
      cold: [] as number[],
      warm: [] as number[],
      direct: [] as number[],
      floor: [] as number[],
    };
    /** CPU seconds this process (Kiln) spent serving each pull (user + system). */
    const kilnCpu = { cold: [] as number[], warm: [] as number[], direct: [] as number[] };
    const withCpu = async (kind: keyof typeof kilnCpu, run: () => Promise<number>) => {
      const before = process.cpuUsage();
      const seconds = await run();
      const used = process.cpuUsage(before);
      kilnCpu[kind].push((used.user + used.system) / 1e6);
      return seconds;
    };
    for (let round = 0; round < ROUNDS; round++) {
      const layout = path.join(root, `image-${round}`);
      await writeNodeStandIn(layout);
      const repo = `library/node-${round}`;
      await execFileAsync('skopeo', [
        'copy',
        '--all',
        '--authfile',
        authFile,
        '--dest-tls-verify=false',
        '--preserve-digests',
        `oci:${layout}:22-slim`,
        `docker://${distHost}/${repo}:22-slim`,
      ]);
      await rm(layout, { recursive: true, force: true });
      const viaKiln = `docker://${kilnHost}/mirror/docker.io/${repo}:22-slim`;
      const kilnCreds = ['--src-creds', `bench:${pullToken}`];
      const direct = () => pull(`docker://${distHost}/${repo}:22-slim`, [], 'direct');
      if (round % 2 === 0) times.direct.push(await withCpu('direct', direct));
      times.cold.push(await withCpu('cold', () => pull(viaKiln, kilnCreds, 'cold')));
      times.warm.push(await withCpu('warm', () => pull(viaKiln, kilnCreds, 'warm')));
      if (round % 2 === 1) times.direct.push(await withCpu('direct', direct));
      const storing = storeImageFloor(`http://${distHost}`, repo, '22-slim', root);
      const [floorPull] = await Promise.all([direct(), storing]);
      times.floor.push(floorPull);
      console.log(
        `round ${round}: direct ${times.direct.at(-1)?.toFixed(2)} s, cold through the mirror ${times.cold.at(-1)?.toFixed(2)} s, warm ${times.warm.at(-1)?.toFixed(2)} s, direct while storing the blobs ${floorPull.toFixed(2)} s`,
      );
    }

    const med = (v: number[]) => median(v) ?? Number.NaN;
    const cold = med(times.cold);
    const warm = med(times.warm);
    const direct = med(times.direct);
    const floor = med(times.floor);
    const coldRatio = cold / direct;
    const warmRatio = warm / direct;
    const imageMiB = LAYER_MIB.reduce((a, b) => a + b, 0);
    const result = {
      benchmark: 'mirror',
      date: new Date().toISOString(),
      quick: QUICK,
      machine: { cpus: os.cpus().length, node: process.version },
      load: {
        note: 'os.loadavg() (1, 5, 15 min) before and after the run; the machine is shared',
        before: loadBefore,
        after: os.loadavg(),
        uptime: (await execFileAsync('uptime')).stdout.trim(),
      },
      image: {
        shape: 'index (amd64 + arm64); amd64 has uncompressed tar layers of random bytes',
        layerMiB: LAYER_MIB,
        amd64MiB: imageMiB,
      },
      upstream: 'Debian docker-registry (Distribution) on 127.0.0.1, no auth',
      client: (await execFileAsync('skopeo', ['--version'])).stdout.trim(),
      rounds: ROUNDS,
      seconds: {
        directFromUpstream: { samples: times.direct, median: direct, ...spread(times.direct) },
        coldThroughMirror: { samples: times.cold, median: cold, ...spread(times.cold) },
        warmFromKiln: { samples: times.warm, median: warm, ...spread(times.warm) },
      },
      floors: {
        'cold pull': {
          what: 'the direct pull while a bare Node loop fetches, hashes and fsyncs the same blobs from Distribution, 4 at a time (bench/mirror-store-floor.ts): the least a verifying, storing mirror adds here; not judged',
          samples: times.floor,
          median: floor,
          ...spread(times.floor),
          ratioToDirect: floor / direct,
        },
      },
      kilnCpuSeconds: {
        note: 'CPU (user + system) of the process serving Kiln during each pull; direct pulls do not touch Kiln (the figure is the bench driver alone)',
        cold: { samples: kilnCpu.cold, median: med(kilnCpu.cold) },
        warm: { samples: kilnCpu.warm, median: med(kilnCpu.warm) },
        direct: { samples: kilnCpu.direct, median: med(kilnCpu.direct) },
      },
      summary: [
        {
          name: 'mirror cold pull / direct pull from the upstream',
          value: cold,
          reference: direct,
          ratio: coldRatio,
          target: TARGET_COLD,
          pass: coldRatio <= TARGET_COLD,
          unit: 's',
          note: `skopeo copy of a ${imageMiB} MiB image; reference: skopeo copy straight from Distribution`,
        },
        {
          name: 'mirror warm pull / the same pull from Distribution',
          value: warm,
          reference: direct,
          ratio: warmRatio,
          target: TARGET_WARM,
          pass: warmRatio <= TARGET_WARM,
          unit: 's',
          note: `skopeo copy of a ${imageMiB} MiB image already stored by the mirror`,
        },
      ],
    };
    const outFile = path.join(import.meta.dirname, 'results', 'mirror.json');
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
    console.log(JSON.stringify({ coldRatio, warmRatio, floorRatio: floor / direct }));
  } finally {
    await tearDownLoopbackRun({ server, closeKiln, distribution, root });
  }
}

await main();
