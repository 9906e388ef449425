/**
 * A real-sized source end to end (issue #15, "A real-sized source", "Kiln's own overhead"): this
 * repository's own tree with its node_modules as the build context (tar.gz), `FROM busybox`,
 * `COPY . /src`, one `RUN`, built by the real daemon in a real QEMU microVM and pushed to its
 * registry. Reports upload / boot / extracting / building / pushing; the agent's unpack against
 * `tar -xzf` of the same tree in the same guest (the RUN step packs /src and times busybox's
 * `tar -xzf` of it, reading /proc/uptime around each step); the VM floor (bench/guest-boot-timer.ts)
 * measured in the same run; and Kiln's own overhead: end to end minus the floor minus the
 * engine's own time (the `building` and `pushing` phases the agent reports).
 *
 *   npx tsx bench/real-source.bench.ts [--quick] [--engine buildah|buildkit]
 *        → bench/results/real-source.json (Buildah), bench/results/real-source-buildkit.json
 *
 * --quick packs `src/` only (hundreds of files) instead of the whole tree. Without `--engine`
 * the same build runs under every engine the guest image has, one after the other: Buildah,
 * and BuildKit when the image was built with KILN_BUILDKIT_DIR (the operator-supplied
 * binaries; without them only Buildah is measured). Each build asks for its engine and the
 * bench checks that it ran. Environment: KILN_BENCH_ROUNDS (builds per engine, default 1).
 *
 * Clocks: the agent's unpack and the RUN step's tar are both timed by the guest's clock, so
 * their ratio holds; the overhead is computed from host-timed phases (the daemon's event
 * timestamps), because on a loaded TCG host the guest's clock falls behind real time.
 * Layer compression is the daemon's default here; bench/layer-compression.bench.ts varies it.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { bootOnce } from './guest-boot-timer.js';
import { median } from './median.js';
import { packSourceContext, sha256File } from './source-context.js';
import { startVmBenchDaemon } from './vm-bench-daemon.js';
import { QemuVmm } from '../src/vm/qemu/qemu-vmm.js';
import { disposeE2eDaemon, REPO_ROOT } from '../test/helpers/e2e-daemon.js';
import buildGuestImage from '../test/helpers/guest-image-setup.js';

const QUICK = process.argv.includes('--quick');
type EngineName = 'buildah' | 'buildkit';
/** The engine `--engine` asks for, or null: every engine of the image. */
const ENGINE_ARG = ((): EngineName | null => {
  const i = process.argv.indexOf('--engine');
  if (i < 0) return null;
  const name = process.argv[i + 1];
  if (name !== 'buildah' && name !== 'buildkit') throw new Error(`--engine buildah|buildkit`);
  return name;
})();
const ROUNDS = Number(process.env.KILN_BENCH_ROUNDS ?? 1);
/** Issue #15: the agent's unpack within 1.5× `tar -xzf` of the same archive in the same guest. */
const UNPACK_TARGET_RATIO = 1.5;
const BUILD_TIMEOUT_SECONDS = 1800;

/**
 * The RUN step: pack /src, then time busybox `tar -xzf` of it, and print both with the guest's
 * uptime around them (busybox's shell `read`, no `date` or `time` applet needed).
 */
const RUN_STEP = [
  'read t0 _ </proc/uptime',
  'busybox tar -czf /tmp/ctx.tgz -C /src .',
  'read t1 _ </proc/uptime',
  'mkdir /tmp/x',
  'busybox tar -xzf /tmp/ctx.tgz -C /tmp/x',
  'read t2 _ </proc/uptime',
  'echo "kiln-bench: pack $t0 $t1 extract $t1 $t2 files $(find /tmp/x | wc -l)"',
  'rm -rf /tmp/x /tmp/ctx.tgz',
].join(' && ');

const DOCKERFILE = ['FROM busybox', 'COPY . /src', `RUN ${RUN_STEP}`, ''].join('\n');

interface Sample {
  buildId: string;
  status: string;
  engine: string | null;
  uploadSeconds: number;
  submitToReadySeconds: number;
  /** `timings.phases` of the build (docs/contracts.md#timings). */
  timings: Record<string, number>;
  /** The build's whole `timings` account as the API gives it. */
  timingsAccount: unknown;
  /**
   * The agent's phases as the host timed them (`timings.host_observed`). Under a loaded TCG
   * host the guest's clock falls behind, so these are the ones the overhead is computed from.
   */
  hostPhaseSeconds: Record<string, number>;
  /** The agent's own unpack (its `unpacked … in X s` log line), inside `extracting`. */
  agentUnpackSeconds: number | null;
  guestTarExtractSeconds: number | null;
  guestTarFiles: number | null;
  /** The daemon's log lines about this build, seconds after the submit. */
  daemonTimeline: { at: number; msg: string }[];
}

function guestTar(logs: string): { seconds: number; files: number } | null {
  const m = /kiln-bench: pack \S+ \S+ extract (\S+) (\S+) files (\d+)/.exec(logs);
  if (m === null) return null;
  return { seconds: Number(m[2]) - Number(m[1]), files: Number(m[3]) };
}

function agentUnpack(logs: string): number | null {
  const m = /unpacked \d+ entries, \d+ bytes in ([\d.]+) s/.exec(logs);
  return m === null ? null : Number(m[1]);
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;
const med = (values: number[]): number => round3(median(values) ?? Number.NaN);

async function main(): Promise<void> {
  await buildGuestImage();
  const imageDir = process.env.KILN_IMAGE_DIR;
  if (imageDir === undefined) throw new Error('no guest image');
  const image = JSON.parse(await readFile(path.join(imageDir, 'image.json'), 'utf8')) as {
    engines?: string[];
  };
  const engines: EngineName[] =
    ENGINE_ARG !== null
      ? [ENGINE_ARG]
      : (['buildah', 'buildkit'] as const).filter((e) => image.engines?.includes(e) === true);
  if (engines.length === 0) throw new Error('the guest image names no engine');
  for (const engine of engines) await measure(engine, imageDir);
}

/** The same build under `engine`: writes its results file. */
async function measure(engine: EngineName, imageDir: string): Promise<void> {
  const work = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-real-'));
  const archive = path.join(work, 'context.tar.gz');
  const context = await packSourceContext(archive, QUICK);
  console.log(`context: ${context.entries} entries, ${context.bytes} bytes (tar.gz)`);

  // The VM floor, with the daemon's driver and argv, in this run.
  const vmm = new QemuVmm({ accel: 'tcg', logger: pino({ level: 'silent' }) });
  const floors: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    floors.push((await bootOnce(vmm, imageDir, 'floor', i)).seconds);
  }

  const {
    daemon,
    client,
    vmm: selected,
  } = await startVmBenchDaemon({
    KILN_MAX_CONCURRENT_BUILDS: '1',
    KILN_SCRATCH_BYTES: '16G',
  });
  const samples: Sample[] = [];
  try {
    const sha = await sha256File(archive);
    for (let i = 0; i < ROUNDS; i++) {
      const startedAt = Date.now();
      const started = performance.now();
      const submitted = await client.submit(archive, {
        dockerfile: DOCKERFILE,
        engine,
        source_sha256: sha,
        timeout_seconds: String(BUILD_TIMEOUT_SECONDS),
      });
      const uploadSeconds = (performance.now() - started) / 1000;
      const build = await client.waitFor(submitted.id, undefined, BUILD_TIMEOUT_SECONDS);
      const submitToReadySeconds = (performance.now() - started) / 1000;
      const logs = await client.logs(build.id);
      const tar = guestTar(logs);
      const ran = build.result?.provenance.engine as { name?: string } | undefined;
      const sample: Sample = {
        buildId: build.id,
        status: build.status,
        engine: ran?.name ?? null,
        uploadSeconds: round3(uploadSeconds),
        submitToReadySeconds: round3(submitToReadySeconds),
        timings: build.timings.phases,
        timingsAccount: build.timings,
        hostPhaseSeconds: build.timings.host_observed,
        agentUnpackSeconds: agentUnpack(logs),
        guestTarExtractSeconds: tar === null ? null : round3(tar.seconds),
        guestTarFiles: tar?.files ?? null,
        daemonTimeline: daemon.logLines
          .filter((l) => l.buildId === build.id && typeof l.time === 'number')
          .map((l) => ({
            at: round3(((l.time as number) - startedAt) / 1000),
            msg: String(l.msg),
          })),
      };
      samples.push(sample);
      console.log(JSON.stringify(sample));
      if (build.status !== 'ready') {
        throw new Error(`build ${build.id} ${build.status}: ${JSON.stringify(build.error)}`);
      }
      if (sample.engine !== engine) throw new Error(`asked for ${engine}, ${sample.engine} ran`);
    }
  } finally {
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  }

  const t = (name: string): number[] => samples.map((s) => s.timings[name] ?? 0);
  const h = (name: string): number[] => samples.map((s) => s.hostPhaseSeconds[name] ?? 0);
  const floor = med(floors);
  const endToEnd = med(samples.map((s) => s.submitToReadySeconds));
  const engineSeconds = med(
    samples.map((s) => (s.hostPhaseSeconds.building ?? 0) + (s.hostPhaseSeconds.pushing ?? 0)),
  );
  const hostExtracting = med(h('extracting'));
  /** `phases.building` per host-timed building second (1 when the guest's figures keep time). */
  const guestClockRate = round3(
    med(samples.map((s) => s.timings.building ?? 0)) / med(h('building')),
  );
  const extracting = med(t('extracting'));
  const unpack = med(
    samples.flatMap((s) => (s.agentUnpackSeconds === null ? [] : [s.agentUnpackSeconds])),
  );
  const tarExtract = med(
    samples.flatMap((s) => (s.guestTarExtractSeconds === null ? [] : [s.guestTarExtractSeconds])),
  );
  const boot = med(t('boot'));
  const upload = med(samples.map((s) => s.uploadSeconds));
  const queued = med(t('queued'));
  const overhead = round3(endToEnd - floor - engineSeconds);
  const unpackRatio = unpack / tarExtract;
  const results = {
    bench: 'real-source',
    measuredAt: new Date().toISOString(),
    quick: QUICK,
    engine,
    host: { cpus: os.cpus().length, loadavg: os.loadavg() },
    vmm: selected ? { name: selected.name, accel: selected.accel } : null,
    context: { ...context, dockerfile: DOCKERFILE },
    rounds: ROUNDS,
    /** Agent-reported (guest clock) medians; unpack and tar are both guest-clock seconds. */
    medians: {
      uploadSeconds: upload,
      queuedSeconds: queued,
      bootSeconds: boot,
      extractingSeconds: extracting,
      agentUnpackSeconds: unpack,
      buildingSeconds: med(t('building')),
      pushingSeconds: med(t('pushing')),
      submitToReadySeconds: endToEnd,
      guestTarExtractSeconds: tarExtract,
      vmFloorSeconds: floor,
    },
    /** The phases timed by the host (the daemon's event timestamps). */
    hostMedians: {
      extractingSeconds: hostExtracting,
      buildingSeconds: med(h('building')),
      pushingSeconds: med(h('pushing')),
    },
    guestClockRate,
    /**
     * Kiln's own overhead = end to end − VM floor − the engine's own time (the building and
     * pushing phases the agent reports, timed on the host's clock), and where it goes.
     */
    overhead: {
      seconds: overhead,
      breakdown: {
        uploadSeconds: upload,
        queuedSeconds: queued,
        bootBeyondFloorSeconds: round3(boot - floor),
        extractingSeconds: hostExtracting,
        restSeconds: round3(overhead - upload - queued - (boot - floor) - hostExtracting),
      },
    },
    floorSamples: floors.map(round3),
    samples,
    // Kiln's own overhead has its target (≤ 0.5 s) under KVM-class speeds only, so under TCG
    // it is reported in `overhead` above and not judged in the summary.
    summary: [
      {
        name:
          engine === 'buildah'
            ? 'agent unpack vs tar -xzf in the guest'
            : `agent unpack vs tar -xzf in the guest (${engine})`,
        value: unpack,
        reference: tarExtract,
        ratio: round3(unpackRatio),
        target: UNPACK_TARGET_RATIO,
        pass: unpackRatio <= UNPACK_TARGET_RATIO,
      },
    ],
  };
  await mkdir(path.join(REPO_ROOT, 'bench', 'results'), { recursive: true });
  await writeFile(
    path.join(
      REPO_ROOT,
      'bench',
      'results',
      engine === 'buildah' ? 'real-source.json' : `real-source-${engine}.json`,
    ),
    `${JSON.stringify(results, null, 2)}\n`,
  );
  console.log(JSON.stringify({ ...results, samples: undefined }, null, 2));
}

await main();
