/**
 * Guest image benchmark: sizes of the built image, the time an unchanged rebuild
 * takes (it must be a cache hit), and boot-to-agent time (QEMU start → the agent's `hello`
 * arriving on the host), measured with scripts/image-smoke.sh. With KILN_BENCH_BUILD=1 it also
 * runs one real Buildah build in the VM and records its phase seconds.
 *
 *   npx tsx bench/guest-image.bench.ts      → bench/results/guest-image.json
 *
 * Environment: KILN_BENCH_ROUNDS (boots, default 3), KILN_SMOKE_ACCEL (tcg|kvm, default tcg).
 * `--quick`: one boot. The summary figure: an unchanged rebuild (a cache hit) must take less
 * than one boot of the image to power-off, measured in the same run.
 */
import { spawn } from 'node:child_process';
import { mkdir, readFile, realpath, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { median } from './median.js';
import { summaryEntry } from './summarize-entry.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ROUNDS = process.argv.includes('--quick') ? 1 : Number(process.env.KILN_BENCH_ROUNDS ?? 3);

interface SmokeSummary {
  ok: boolean;
  helloMs?: number;
  exitMs: number;
  resultMs?: number;
  accel: string;
  result?: { ok: boolean; phaseSeconds?: Record<string, number> };
}

function run(
  command: string,
  args: string[],
): Promise<{ code: number; stdout: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: REPO, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString('utf8');
    });
    child.once('error', reject);
    child.once('close', (code) => {
      resolve({ code: code ?? -1, stdout, ms: Date.now() - started });
    });
  });
}

function lastJsonLine(stdout: string): SmokeSummary {
  const line = stdout
    .trim()
    .split('\n')
    .reverse()
    .find((l) => l.startsWith('{'));
  if (line === undefined) throw new Error('image-smoke.sh printed no summary');
  return JSON.parse(line) as SmokeSummary;
}

async function main(): Promise<void> {
  const rebuild = await run('bash', ['scripts/build-image.sh']);
  if (rebuild.code !== 0) throw new Error('scripts/build-image.sh failed');
  // A second run with nothing changed must be a cache hit.
  const unchanged = await run('bash', ['scripts/build-image.sh']);
  const cache =
    process.env.KILN_CACHE_DIR ??
    path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'kiln');
  const imageDir = await realpath(path.join(cache, 'images', 'current'));
  const image = JSON.parse(await readFile(path.join(imageDir, 'image.json'), 'utf8')) as {
    hash: string;
    kernelVersion: string;
    nodeVersion: string;
    engines: string[];
    sizes: Record<string, number>;
  };

  const boots: SmokeSummary[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const r = await run('bash', ['scripts/image-smoke.sh']);
    const summary = lastJsonLine(r.stdout);
    if (r.code !== 0 || !summary.ok) throw new Error(`boot ${i + 1} failed`);
    boots.push(summary);
    console.log(
      `boot ${i + 1}: hello after ${summary.helloMs ?? '?'} ms, VM gone after ${summary.exitMs} ms`,
    );
  }

  let build: SmokeSummary | null = null;
  if (process.env.KILN_BENCH_BUILD === '1') {
    const r = await run('bash', ['scripts/image-smoke.sh', '--build']);
    build = lastJsonLine(r.stdout);
    console.log(`build: result after ${build.resultMs ?? '?'} ms, ok=${build.ok}`);
  }

  const helloMs = boots.map((b) => b.helloMs ?? Number.NaN).filter((n) => Number.isFinite(n));
  const powerOffMs = median(boots.map((b) => b.exitMs));
  const results = {
    measuredAt: new Date().toISOString(),
    host: { cpus: os.cpus().length, loadavg: os.loadavg() },
    accel: boots[0]?.accel ?? 'tcg',
    image: {
      hash: image.hash,
      kernelVersion: image.kernelVersion,
      nodeVersion: image.nodeVersion,
      engines: image.engines,
      sizesBytes: image.sizes,
    },
    rebuildUnchangedSeconds: unchanged.ms / 1000,
    rebuildUnchangedWasCacheHit: unchanged.stdout.includes('unchanged'),
    bootToAgentSeconds: {
      samples: helloMs.map((ms) => ms / 1000),
      median: (median(helloMs) ?? Number.NaN) / 1000,
    },
    bootToPowerOffSeconds: {
      samples: boots.map((b) => b.exitMs / 1000),
      median: (median(boots.map((b) => b.exitMs)) ?? Number.NaN) / 1000,
    },
    summary:
      powerOffMs === null
        ? []
        : [
            summaryEntry({
              name: 'unchanged rebuild vs one boot to power-off',
              value: unchanged.ms / 1000,
              reference: powerOffMs / 1000,
              target: 1,
              unit: 's',
            }),
          ],
    buildahBuild:
      build === null
        ? null
        : {
            ok: build.ok,
            helloSeconds: (build.helloMs ?? Number.NaN) / 1000,
            resultSeconds: (build.resultMs ?? Number.NaN) / 1000,
            vmGoneSeconds: build.exitMs / 1000,
            phaseSeconds: build.result?.phaseSeconds ?? {},
          },
  };
  await mkdir(path.join(REPO, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(REPO, 'bench', 'results', 'guest-image.json'),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  console.log(JSON.stringify(results, null, 2));
}

await main();
