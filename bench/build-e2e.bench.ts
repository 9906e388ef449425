/**
 * End-to-end build benchmark: the real daemon, real QEMU microVMs (TCG on machines
 * where KVM cannot boot), the real registry. Runs ROUNDS builds of a small busybox Dockerfile
 * (COPY + RUN + ENV + CMD) one after another and records, per build, boot-to-agent seconds,
 * the agent's phase seconds and the wall time from submit to ready.
 *
 *   npx tsx bench/build-e2e.bench.ts [--quick]      → bench/results/build-e2e.json
 *
 * `--quick`: one round. The summary figure is Kiln's own time per build: submit-to-ready minus
 * the VM's start and boot to the agent's hello and minus the engine's start, build and push as
 * the agent reports them, measured in the same builds, against the 0.5 s budget the project
 * sets for KVM-class machines. What is left (upload, queue, token, the run's preparation, the
 * agent's unpack and its other work, teardown) is broken down per phase in the results.
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
const ROUNDS = QUICK ? 1 : Number(process.env.KILN_BENCH_ROUNDS ?? 3);
/** Kiln's own seconds per build allowed under KVM-class speeds (issue 15). */
const OVERHEAD_BUDGET_SECONDS = 0.5;
/** The VM's part: the VMM's start and the boot to the agent's hello. */
const BOOT_PHASES: readonly string[] = ['vm_start', 'boot'];
/** The build engine's own part, as the agent reports it. */
const ENGINE_PHASES: readonly string[] = ['engine_start', 'building', 'pushing'];

interface Sample {
  buildId: string;
  status: string;
  bootSeconds: number | null;
  phaseSeconds: Record<string, number>;
  submitToReadySeconds: number;
}

async function main(): Promise<void> {
  const { daemon, client, vmm } = await startVmBenchDaemon({
    KILN_MAX_CONCURRENT_BUILDS: '1',
    KILN_DEFAULT_MEMORY_MB: '1024',
    KILN_DEFAULT_CPUS: '1',
    KILN_SCRATCH_BYTES: '8G',
  });
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-e2e-'));
  const samples: Sample[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const src = await writeSourceTarball(path.join(work, `src-${i}.tar.gz`), {
        Dockerfile: [
          'FROM busybox',
          'COPY hello.txt /app/hello.txt',
          `RUN echo round-${i} > /app/round.txt`,
          'ENV GREETING=bench',
          'CMD ["cat", "/app/hello.txt"]',
          '',
        ].join('\n'),
        'hello.txt': `hello ${i}\n`,
      });
      const started = Date.now();
      const submitted = await client.submit(src.path);
      const build = await client.waitFor(submitted.id, undefined, 600);
      const { phases } = build.timings;
      const sample: Sample = {
        buildId: build.id,
        status: build.status,
        // VM start to the agent hello, as before the phases were split.
        bootSeconds: phases.boot === undefined ? null : (phases.vm_start ?? 0) + phases.boot,
        phaseSeconds: phases,
        submitToReadySeconds: (Date.now() - started) / 1000,
      };
      samples.push(sample);
      process.stdout.write(`${JSON.stringify(sample)}\n`);
    }
  } finally {
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  }
  const ok = samples.filter((s) => s.status === 'ready');
  // Kiln's own time: what is left of submit-to-ready once the VM's start and boot to the
  // agent's hello and the engine's own phases (its start, the build, the push) are taken out.
  // The timeline's phases already hold boot and vm_start, so nothing is taken out twice.
  const kilnSeconds = (s: Sample): number =>
    s.submitToReadySeconds -
    [...BOOT_PHASES, ...ENGINE_PHASES].reduce(
      (sum, phase) => sum + (s.phaseSeconds[phase] ?? 0),
      0,
    );
  const overhead = median(ok.filter((s) => s.bootSeconds !== null).map(kilnSeconds));
  // Where Kiln's own time goes: the median of each other phase, and what no phase accounts for.
  const kilnPhases = new Set(
    ok
      .flatMap((s) => Object.keys(s.phaseSeconds))
      .filter((phase) => !BOOT_PHASES.includes(phase) && !ENGINE_PHASES.includes(phase)),
  );
  const kilnBreakdownSeconds: Record<string, number | null> = Object.fromEntries([
    ...[...kilnPhases].map((phase): [string, number | null] => [
      phase,
      median(ok.map((s) => s.phaseSeconds[phase] ?? 0)),
    ]),
    [
      'unaccounted',
      median(
        ok.map(
          (s) =>
            s.submitToReadySeconds -
            Object.values(s.phaseSeconds).reduce((sum, seconds) => sum + seconds, 0),
        ),
      ),
    ],
  ]);
  const result = {
    benchmark: 'build-e2e',
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, memoryGiB: Math.round(os.totalmem() / 1024 ** 3) },
    vmm,
    rounds: ROUNDS,
    succeeded: ok.length,
    medianBootToAgentSeconds: median(
      ok.flatMap((s) => (s.bootSeconds === null ? [] : [s.bootSeconds])),
    ),
    medianSubmitToReadySeconds: median(ok.map((s) => s.submitToReadySeconds)),
    medianKilnOverheadSeconds: overhead,
    kilnBreakdownSeconds,
    quick: QUICK,
    loadavg: os.loadavg(),
    summary:
      overhead === null
        ? []
        : [
            summaryEntry({
              name: 'Kiln time per build (submit-to-ready − VM start and boot − engine phases)',
              value: overhead,
              reference: OVERHEAD_BUDGET_SECONDS,
              target: 1,
              unit: 's',
              note: 'reference: the 0.5 s budget for KVM-class machines; breakdown in kilnBreakdownSeconds',
            }),
          ],
    samples,
  };
  await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(REPO_ROOT, 'bench', 'results', 'build-e2e.json'),
    `${JSON.stringify(result, null, 2)}\n`,
  );
  process.stdout.write(`${JSON.stringify({ ...result, samples: undefined })}\n`);
  if (ok.length < ROUNDS) process.exitCode = 1;
}

await main();
