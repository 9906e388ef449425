/**
 * Warm-build benchmark for persistent cache disks: the real daemon, real QEMU microVMs, the
 * real registry. An app whose Dockerfile has a dependency-install step is built cold (a new
 * cache disk), then rebuilt WARM_ROUNDS times after a change to its last layer only, each time
 * on a fork of the disk the previous build committed. Records submit-to-ready per build and
 * the warm/cold ratio, measured in the same run (target ≤ 0.3).
 *
 * The install step stands in for `npm ci` without egress: it "downloads" PACKAGES packages
 * into a `RUN --mount=type=cache` directory (each a gzip -9 of 4 MiB of pseudo-random data —
 * real CPU and disk work in the guest) and unpacks them into the image. On the warm disk the
 * engine's layer store already holds that step's layer, so only the changed last layer is
 * rebuilt and pushed. Only Buildah is measured unless the guest image also ships BuildKit.
 *
 *   npx tsx bench/cache-disks.bench.ts [--quick]      → bench/results/cache-disks.json
 *
 * `--quick`: one warm round and 4 packages.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { median } from './median.js';
import { summaryEntry } from './summarize-entry.js';
import { startVmBenchDaemon } from './vm-bench-daemon.js';
import { disposeE2eDaemon, REPO_ROOT } from '../test/helpers/e2e-daemon.js';
import { writeSourceTarball } from '../test/helpers/e2e-source.js';

const QUICK = process.argv.includes('--quick');
const WARM_ROUNDS = QUICK ? 1 : Number(process.env.KILN_BENCH_WARM_ROUNDS ?? 2);
const PACKAGES = QUICK ? 4 : Number(process.env.KILN_BENCH_PACKAGES ?? 24);
const TARGET = 0.3;

const INSTALL = [
  'set -e',
  'mkdir -p /root/.cache/deps /app/node_modules',
  'while read -r name; do',
  '  [ -z "$name" ] && continue',
  '  tgz="/root/.cache/deps/$name.tgz"',
  '  if [ ! -f "$tgz" ]; then',
  '    mkdir -p "/tmp/pkg/$name"',
  '    i=0',
  '    while [ $i -lt 4 ]; do',
  '      head -c 1048576 /dev/urandom | od -An -tx1 | head -c 1048576 > "/tmp/pkg/$name/part$i.js"',
  '      i=$((i + 1))',
  '    done',
  '    tar -C /tmp/pkg -cf - "$name" | gzip -9 > "$tgz"',
  '    rm -rf "/tmp/pkg/$name"',
  '  fi',
  '  gunzip -c "$tgz" | tar -C /app/node_modules -xf -',
  'done < /app/deps.lock',
  'du -sh /app/node_modules /root/.cache/deps',
  '',
].join('\n');

interface Sample {
  kind: 'cold' | 'warm';
  buildId: string;
  status: string;
  bootSeconds: number | null;
  phaseSeconds: Record<string, number>;
  submitToReadySeconds: number;
  cacheLog: string | null;
}

async function main(): Promise<void> {
  const { daemon, token, client, vmm } = await startVmBenchDaemon({
    KILN_MAX_CONCURRENT_BUILDS: '1',
    KILN_DEFAULT_MEMORY_MB: '1024',
    KILN_DEFAULT_CPUS: '1',
    KILN_SCRATCH_BYTES: '8G',
    KILN_CACHE_DISK_BYTES: '4G',
    KILN_BOOT_TIMEOUT_SECONDS: '180',
  });
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-caches-'));
  const samples: Sample[] = [];
  let disk: unknown = null;
  try {
    const lock = Array.from({ length: PACKAGES }, (_, i) => `pkg-${i}`).join('\n');
    for (let round = 0; round <= WARM_ROUNDS; round++) {
      const src = await writeSourceTarball(path.join(work, `src-${round}.tar.gz`), {
        Dockerfile: [
          'FROM busybox',
          'COPY deps.lock install.sh /app/',
          'RUN --mount=type=cache,target=/root/.cache/deps sh /app/install.sh',
          'COPY app.js /app/app.js',
          'CMD ["cat", "/app/app.js"]',
          '',
        ].join('\n'),
        'deps.lock': `${lock}\n`,
        'install.sh': INSTALL,
        'app.js': `console.log('round ${round}');\n`,
      });
      const started = Date.now();
      const submitted = await client.submit(src.path, { cache_scope: 'app', image_name: 'app' });
      const build = await client.waitFor(submitted.id, undefined, 1800);
      const { phases } = build.timings;
      const logs = await client.logs(build.id);
      const sample: Sample = {
        kind: round === 0 ? 'cold' : 'warm',
        buildId: build.id,
        status: build.status,
        // VM start to the agent hello, as before the phases were split.
        bootSeconds: phases.boot === undefined ? null : (phases.vm_start ?? 0) + phases.boot,
        phaseSeconds: phases,
        submitToReadySeconds: (Date.now() - started) / 1000,
        cacheLog: /cache disk for scope "app": [^\n]*/.exec(logs)?.[0] ?? null,
      };
      samples.push(sample);
      process.stdout.write(`${JSON.stringify(sample)}\n`);
      if (build.status !== 'ready') break;
    }
    const res = await fetch(`${daemon.url}/caches`, {
      headers: { authorization: `Bearer ${token}` },
    });
    disk = ((await res.json()) as { caches: unknown[] }).caches[0] ?? null;
  } finally {
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  }
  const cold = samples.find((s) => s.kind === 'cold' && s.status === 'ready');
  const warm = samples.filter((s) => s.kind === 'warm' && s.status === 'ready');
  const warmMedian = median(warm.map((s) => s.submitToReadySeconds));
  const ratio =
    cold && warm.length > 0 && warmMedian !== null
      ? Math.round((warmMedian / cold.submitToReadySeconds) * 1000) / 1000
      : null;
  const result = {
    benchmark: 'cache-disks',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 1024 ** 3) },
    vmm,
    engine: 'buildah',
    packages: PACKAGES,
    warmRounds: WARM_ROUNDS,
    coldSubmitToReadySeconds: cold?.submitToReadySeconds ?? null,
    medianWarmSubmitToReadySeconds: warmMedian,
    warmToColdRatio: ratio,
    target: TARGET,
    quick: QUICK,
    loadavg: os.loadavg(),
    summary:
      cold && warmMedian !== null
        ? [
            summaryEntry({
              name: 'warm rebuild vs cold build (submit to ready)',
              value: warmMedian,
              reference: cold.submitToReadySeconds,
              target: TARGET,
              unit: 's',
            }),
          ]
        : [],
    disk,
    samples,
  };
  await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(REPO_ROOT, 'bench', 'results', 'cache-disks.json'),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  process.stdout.write(`${JSON.stringify({ ...result, samples: undefined })}\n`);
  if (ratio === null || ratio > TARGET) process.exitCode = 1;
}

await main();
