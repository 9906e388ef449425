/**
 * Layer compression chosen by measurement (issue #15, "layer compression chosen by
 * measurement"): the same real-sized source (bench/source-context.ts: this repository's tree with
 * node_modules, or `src/` with --quick) built by the real daemon in a real QEMU microVM, once per
 * KILN_LAYER_COMPRESSION variant, `FROM busybox` + `COPY . /src` and nothing else, so the
 * `pushing` phase is the engine compressing and uploading the one big layer. Per variant:
 *
 * - `pushing` seconds, timed by the host (the daemon's event timestamps; under a loaded TCG host
 *   the guest's clock falls behind), and the guest's own figure;
 * - the pushed COPY layer's size and media type, from the manifest the registry serves;
 * - a pull of the image with skopeo from the registry into a local OCI layout (time), and the
 *   time to decompress the pulled layer on the host (`gzip -dc` / `zstd -dc`, what a node pays
 *   to unpack it), so the trade-off — guest CPU under TCG against bytes stored and served to the
 *   nodes that pull the image — is in one file.
 *
 * The floor of the pushing phase is measured in the same run: `none` under BuildKit (an
 * uncompressed upload). Buildah 1.28 cannot push uncompressed to a registry (it always
 * compresses for docker://, containers/buildah#3904), so under Buildah the cheapest variant is
 * gzip level 1 and `none` is not run (it would be the same push).
 *
 *   node --import tsx bench/layer-compression.bench.ts [--quick] [--engine buildah|buildkit]
 *        [--variants gzip,gzip:1,zstd,zstd:19,none]      → bench/results/layer-compression.json
 *
 * Environment: KILN_BENCH_ROUNDS (builds per variant, default 1). Rounds run the variants in
 * turn (round 1: every variant, then round 2 …), so a load change hits them alike.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { timedSkopeo } from './loopback-servers.js';
import { median } from './median.js';
import { packSourceContext, sha256File } from './source-context.js';
import type { LayerCompression } from '../common/protocol/build-job.js';
import { E2eClient } from '../test/helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  REPO_ROOT,
  seedBaseImage,
  startE2eDaemon,
} from '../test/helpers/e2e-daemon.js';
import buildGuestImage from '../test/helpers/guest-image-setup.js';

const execFileAsync = promisify(execFile);
const QUICK = process.argv.includes('--quick');
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const ENGINE = arg('--engine') ?? 'buildah';
if (ENGINE !== 'buildah' && ENGINE !== 'buildkit') throw new Error('--engine buildah|buildkit');
const VARIANTS: LayerCompression[] = (
  arg('--variants') ?? (ENGINE === 'buildah' ? 'gzip,gzip:1,zstd' : 'gzip,zstd,none')
)
  .split(',')
  .map((v) => {
    const [format, level] = v.split(':');
    if (format !== 'gzip' && format !== 'zstd' && format !== 'none') {
      throw new Error(`--variants: ${v} is not gzip, zstd or none (with :level)`);
    }
    return { format, level: level === undefined ? null : Number(level) };
  });
const ROUNDS = Number(process.env.KILN_BENCH_ROUNDS ?? 1);
const BUILD_TIMEOUT_SECONDS = 1800;
const DOCKERFILE = 'FROM busybox\nCOPY . /src\n';

const label = (c: LayerCompression): string =>
  c.level === null ? c.format : `${c.format}:${c.level}`;
const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const med = (values: number[]): number => round3(median(values) ?? Number.NaN);
const spread = (values: number[]): [number, number] => [
  round3(Math.min(...values)),
  round3(Math.max(...values)),
];

interface Sample {
  variant: string;
  round: number;
  buildId: string;
  engine: string | null;
  /** `pushing` as the host timed it (timings.host_observed). */
  hostPushingSeconds: number;
  /** `pushing` as the guest reported it (its clock falls behind under load). */
  guestPushingSeconds: number;
  hostBuildingSeconds: number;
  submitToReadySeconds: number;
  /** The COPY layer (the manifest's last) as the registry serves it. */
  layer: { mediaType: string; size: number };
  /** Every layer of the manifest, base first. */
  layers: { mediaType: string; size: number }[];
  /** `skopeo copy docker://… oci:<dir>` of the image, seconds. */
  pullSeconds: number;
  /** Decompressing the pulled COPY layer on the host to /dev/null, seconds. */
  decompressSeconds: number;
  /** The layer's uncompressed tar size. */
  uncompressedBytes: number;
  loadavg: number[];
}

/** Times decompressing one blob to nowhere with the tool its media type names. */
async function timedDecompress(
  blob: string,
  mediaType: string,
): Promise<{ seconds: number; bytes: number }> {
  const tool = mediaType.endsWith('+zstd')
    ? 'zstd -dc'
    : mediaType.endsWith('+gzip')
      ? 'gzip -dc'
      : 'cat';
  const start = performance.now();
  const { stdout } = await execFileAsync('bash', ['-c', `${tool} "$1" | wc -c`, 'bash', blob]);
  return { seconds: (performance.now() - start) / 1000, bytes: Number(stdout.trim()) };
}

async function runVariant(
  compression: LayerCompression,
  round: number,
  archive: string,
  sha: string,
  work: string,
): Promise<Sample> {
  const daemon = await startE2eDaemon({
    env: {
      KILN_MAX_CONCURRENT_BUILDS: '1',
      KILN_SCRATCH_BYTES: '16G',
      KILN_LAYER_COMPRESSION: compression.format,
      ...(compression.level === null
        ? {}
        : { KILN_LAYER_COMPRESSION_LEVEL: String(compression.level) }),
    },
  });
  try {
    await seedBaseImage(daemon, await daemon.token('operator', ['registry:admin']));
    const client = new E2eClient(
      daemon,
      await daemon.token('bench', ['builds:write', 'builds:read']),
    );
    const started = performance.now();
    const submitted = await client.submit(archive, {
      dockerfile: DOCKERFILE,
      source_sha256: sha,
      timeout_seconds: String(BUILD_TIMEOUT_SECONDS),
      ...(ENGINE === 'buildkit' ? { engine: 'buildkit' } : { engine: 'buildah' }),
    });
    const build = await client.waitFor(submitted.id, undefined, BUILD_TIMEOUT_SECONDS);
    const submitToReadySeconds = (performance.now() - started) / 1000;
    if (build.status !== 'ready' || build.result === null) {
      throw new Error(`build ${build.id} ${build.status}: ${JSON.stringify(build.error)}`);
    }
    const engine = (build.result.provenance.engine as { name?: string } | undefined)?.name ?? null;
    if (engine !== ENGINE) throw new Error(`asked for ${ENGINE}, ${engine} ran`);
    const creds = `kiln:${await daemon.token('bench', ['registry:pull'])}`;
    const ref = `docker://${daemon.registry}/${build.repository}:${build.id}`;
    const { stdout } = await execFileAsync('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      creds,
      ref,
    ]);
    const manifest = JSON.parse(stdout) as {
      layers: { mediaType: string; size: number; digest: string }[];
    };
    const last = manifest.layers.at(-1);
    if (last === undefined) throw new Error(`build ${build.id}: a manifest without layers`);
    const dir = path.join(work, `pull-${label(compression).replace(':', '-')}-${round}`);
    const pullSeconds = await timedSkopeo([
      'copy',
      '--quiet',
      '--src-tls-verify=false',
      '--src-creds',
      creds,
      ref,
      `oci:${dir}:img`,
    ]);
    const unpacked = await timedDecompress(
      path.join(dir, 'blobs', ...last.digest.split(':')),
      last.mediaType,
    );
    await rm(dir, { recursive: true, force: true });
    const h = build.timings.host_observed;
    return {
      variant: label(compression),
      round,
      buildId: build.id,
      engine,
      hostPushingSeconds: round3(h.pushing ?? Number.NaN),
      guestPushingSeconds: round3(build.timings.phases.pushing ?? Number.NaN),
      hostBuildingSeconds: round3(h.building ?? Number.NaN),
      submitToReadySeconds: round3(submitToReadySeconds),
      layer: { mediaType: last.mediaType, size: last.size },
      layers: manifest.layers.map((l) => ({ mediaType: l.mediaType, size: l.size })),
      pullSeconds: round3(pullSeconds),
      decompressSeconds: round3(unpacked.seconds),
      uncompressedBytes: unpacked.bytes,
      loadavg: os.loadavg().map(round3),
    };
  } finally {
    await disposeE2eDaemon(daemon);
  }
}

async function main(): Promise<void> {
  await buildGuestImage();
  const image = JSON.parse(
    await readFile(path.join(process.env.KILN_IMAGE_DIR ?? '', 'image.json'), 'utf8'),
  ) as { engines?: string[] };
  if (!(image.engines ?? ['buildah']).includes(ENGINE)) {
    throw new Error(`the guest image has no ${ENGINE} (KILN_BUILDKIT_DIR for BuildKit)`);
  }
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-compression-'));
  const samples: Sample[] = [];
  let context: { entries: number; bytes: number };
  const loadBefore = os.loadavg().map(round3);
  try {
    const archive = path.join(work, 'context.tar.gz');
    context = await packSourceContext(archive, QUICK);
    console.log(`context: ${context.entries} entries, ${context.bytes} bytes (tar.gz)`);
    const sha = await sha256File(archive);
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of VARIANTS) {
        const sample = await runVariant(variant, round, archive, sha, work);
        samples.push(sample);
        console.log(JSON.stringify(sample));
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }

  const variants = VARIANTS.map((v) => {
    const mine = samples.filter((s) => s.variant === label(v));
    const pick = (f: (s: Sample) => number) => ({
      median: med(mine.map(f)),
      spread: spread(mine.map(f)),
    });
    return {
      variant: label(v),
      mediaType: mine[0]?.layer.mediaType ?? null,
      hostPushingSeconds: pick((s) => s.hostPushingSeconds),
      guestPushingSeconds: pick((s) => s.guestPushingSeconds),
      layerBytes: pick((s) => s.layer.size),
      uncompressedBytes: med(mine.map((s) => s.uncompressedBytes)),
      pullSeconds: pick((s) => s.pullSeconds),
      decompressSeconds: pick((s) => s.decompressSeconds),
    };
  });
  const gzip = variants.find((v) => v.variant === 'gzip');
  /** Each variant against the engine's default (gzip) measured in the same run. */
  const againstGzip = variants.map((v) => ({
    variant: v.variant,
    pushingRatio:
      gzip === undefined
        ? null
        : round3(v.hostPushingSeconds.median / gzip.hostPushingSeconds.median),
    bytesRatio: gzip === undefined ? null : round3(v.layerBytes.median / gzip.layerBytes.median),
    pullPlusDecompressRatio:
      gzip === undefined
        ? null
        : round3(
            (v.pullSeconds.median + v.decompressSeconds.median) /
              (gzip.pullSeconds.median + gzip.decompressSeconds.median),
          ),
  }));
  const results = {
    bench: 'layer-compression',
    measuredAt: new Date().toISOString(),
    quick: QUICK,
    engine: ENGINE,
    host: { cpus: os.cpus().length, loadBefore, loadAfter: os.loadavg().map(round3) },
    context: { ...context, dockerfile: DOCKERFILE },
    rounds: ROUNDS,
    variants,
    againstGzip,
    samples,
  };
  await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(REPO_ROOT, 'bench', 'results', 'layer-compression.json'),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  console.log(JSON.stringify({ ...results, samples: undefined }, null, 2));
}

await main();
