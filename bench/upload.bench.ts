/**
 * Upload benchmark: `POST /builds` of a generated tar (1 GiB) and of the same tar gzipped, sent
 * by curl to a real daemon process, against references timed in the same run on the same
 * files:
 *
 * - plain tar: `cp` of the file to the same disk plus an fsync of the copy (Kiln fsyncs an
 *   accepted source before it answers);
 * - tar.gz: `gzip -dc` of it to /dev/null (the floor for anything that must read the tar).
 *
 * Targets: Kiln's throughput ≥ 0.8× the reference's (ratio = reference time / Kiln time) and the
 * daemon's peak RSS growth during an upload ≤ 64 MiB. Each figure is the median of the runs,
 * with the spread; Kiln and the reference alternate which goes first.
 *
 * The plain tar also has a same-run floor, not judged: the same curl upload to a bare node:http
 * server that only writes the body through the daemon's file writer and fsyncs it
 * (bench/upload-floor-server.ts), timed right after each Kiln run. What Kiln takes beyond it is
 * its own work (multipart parsing, the hash, the tar walk, auth and the database).
 *
 *   npx tsx bench/upload.bench.ts [--quick] [--runs N] [--mib M] [--cpu-prof DIR] [--only tar|tar.gz]
 *
 * `--quick`: 256 MiB, one run. `--cpu-prof DIR`: the daemon writes a V8 CPU profile there.
 * `--only`: one of the two cases (for profiling one path; the result file then lacks the other).
 * Writes bench/results/upload.json.
 */
import { execFile, spawn } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { median } from './median.js';
import { UploadFloorServer } from './upload-floor-server.js';
import { tarEntry } from '../test/helpers/tar-builder.js';

const execFileAsync = promisify(execFile);
const MiB = 1024 * 1024;
const FILE_MIB = 8;
const RSS_TARGET_MIB = 64;
const THROUGHPUT_TARGET = 0.8;

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
function option(name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i === -1 ? undefined : argv[i + 1];
}
const totalMiB = Number(option('mib') ?? (quick ? 256 : 1024));
const runs = Number(option('runs') ?? (quick ? 1 : 3));
const cpuProfDir = option('cpu-prof');
const only = option('only');
if (only !== undefined && only !== 'tar' && only !== 'tar.gz') {
  throw new Error(`--only takes tar or tar.gz, not ${only}`);
}

function statusKiB(pid: number, key: 'VmRSS' | 'VmHWM'): number {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
  if (!m?.[1]) throw new Error(`no ${key} for ${pid}`);
  return Number(m[1]);
}

/**
 * One MiB of text-like bytes: words from a 4096-word vocabulary drawn by a seeded xorshift,
 * which gzip compresses about as well as source code (≈3×), unlike a short repeating pattern.
 */
function textBlock(seed: number): Buffer {
  let x = seed | 1;
  const next = () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
  const vocabulary: string[] = [];
  for (let w = 0; w < 4096; w++) {
    let word = '';
    for (let l = 2 + (next() % 9); l > 0; l--) word += String.fromCharCode(97 + (next() % 26));
    vocabulary.push(word);
  }
  const out = Buffer.alloc(MiB);
  let at = 0;
  while (at < MiB) {
    at += out.write(vocabulary[next() % 4096] ?? '', at, 'latin1');
    if (at < MiB) out[at++] = next() % 12 === 0 ? 0x0a : 0x20;
  }
  return out;
}

/** A tar of `totalMiB` MiB in FILE_MIB-MiB files of text-like bytes. */
function* tarChunks(): Generator<Buffer> {
  const blocks = Array.from({ length: FILE_MIB }, (_, i) => textBlock(0x9e3779b9 + i));
  const files = Math.ceil(totalMiB / FILE_MIB);
  for (let f = 0; f < files; f++) {
    yield tarEntry({ name: `data/file-${f}.txt`, size: FILE_MIB * MiB });
    for (const block of blocks) {
      block.write(`${f}\n`.padStart(12, ' '), 0, 'latin1');
      yield block;
    }
  }
  yield Buffer.alloc(1024);
}

/** CPU seconds (user + system) a process (all threads) or one thread has used so far, from /proc. */
function cpuSeconds(pid: number, tid?: number, only?: 'system'): number {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const fields = readFileSync(file, 'utf8').split(') ')[1]?.split(' ') ?? [];
  // utime and stime are fields 14 and 15 of stat(5), in clock ticks (100 per second on Linux).
  const system = Number(fields[12]) / 100;
  return only === 'system' ? system : Number(fields[11]) / 100 + system;
}

/** CPU seconds used so far by each thread of a process, by thread id, from /proc. */
function threadCpuSeconds(pid: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), cpuSeconds(pid, Number(tid)));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/**
 * Where the daemon's CPU went during one upload: its main thread (the event loop: socket
 * reads, multipart parsing, the tar walk and whatever else runs in JS; `mainSystem` the part
 * of it spent in the kernel) and its busiest other
 * threads (libuv's pool doing the writes and syncs, a hashing worker), largest first. With two
 * cores shared with curl, the main thread's figure bounds the upload's time from below.
 */
function threadCpuDelta(
  pid: number,
  before: Map<number, number>,
  mainSystemBefore: number,
): { main: number; mainSystem: number; others: number[] } {
  const after = threadCpuSeconds(pid);
  const mainSystem = cpuSeconds(pid, pid, 'system') - mainSystemBefore;
  const others: number[] = [];
  let main = 0;
  for (const [tid, cpu] of after) {
    const used = cpu - (before.get(tid) ?? 0);
    if (tid === pid) main = used;
    else if (used >= 0.01) others.push(used);
  }
  others.sort((a, b) => b - a);
  return {
    main: round(main, 2),
    mainSystem: round(mainSystem, 2),
    others: others.slice(0, 4).map((v) => round(v, 2)),
  };
}

/** Runs a shell command under /usr/bin/time and returns the CPU seconds it used. */
async function shellCpu(script: string, ...args: string[]): Promise<number> {
  const { stderr } = await execFileAsync('/usr/bin/time', [
    '-f',
    'cpu %U %S',
    'sh',
    '-c',
    script,
    'sh',
    ...args,
  ]);
  const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
  if (!m) throw new Error(`no CPU time from /usr/bin/time: ${stderr}`);
  return Number(m[1]) + Number(m[2]);
}

async function seconds(run: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await run();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function spread(values: number[]): { median: number; min: number; max: number } {
  return {
    median: round(median(values) ?? Number.NaN),
    min: round(Math.min(...values)),
    max: round(Math.max(...values)),
  };
}

function round(n: number, digits = 3): number {
  return Number(n.toFixed(digits));
}

interface Daemon {
  pid: number;
  port: number;
  token: string;
  stop(): Promise<void>;
}

async function startDaemon(dataDir: string): Promise<Daemon> {
  const nodeArgs = ['--import', 'tsx'];
  if (cpuProfDir !== undefined) nodeArgs.push('--cpu-prof', '--cpu-prof-dir', cpuProfDir);
  const daemon = spawn(process.execPath, [...nodeArgs, 'src/main.ts'], {
    env: {
      ...process.env,
      KILN_DATA_DIR: dataDir,
      KILN_PORT: '0',
      KILN_LOG_LEVEL: 'info',
      // No guest image: the accepted build fails at once instead of booting a VM.
      KILN_IMAGE_DIR: path.join(dataDir, 'no-image'),
      KILN_MAX_SOURCE_BYTES: `${totalMiB + 64}M`,
      KILN_MAX_UNPACKED_BYTES: `${totalMiB + 64}M`,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = '';
    daemon.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (const line of buffered.split('\n')) {
        if (line.includes('"msg":"listening"')) {
          resolve((JSON.parse(line) as { port: number }).port);
        }
      }
    });
    daemon.once('exit', (code) => {
      reject(new Error(`daemon exited with ${code}`));
    });
  });
  daemon.stdout.resume();
  const { stdout } = await execFileAsync(
    process.execPath,
    [
      '--import',
      'tsx',
      'src/cli/kiln.ts',
      'token',
      'create',
      '--tenant',
      'bench',
      '--scope',
      'builds:write',
    ],
    { env: { ...process.env, KILN_DATA_DIR: dataDir } },
  );
  return {
    pid: daemon.pid!,
    port,
    token: stdout.trim(),
    stop: async () => {
      if (daemon.exitCode !== null || daemon.signalCode !== null) return;
      const exited = new Promise((resolve) => daemon.once('exit', resolve));
      daemon.kill('SIGTERM');
      await exited;
    },
  };
}

/** POSTs `file` as the multipart `source` part, as a client of the API would; the HTTP status. */
async function curlUpload(url: string, file: string, token?: string): Promise<number> {
  const { stdout } = await execFileAsync('curl', [
    '-sS',
    '-o',
    '/dev/null',
    '-w',
    '%{http_code}',
    ...(token === undefined ? [] : ['-H', `authorization: Bearer ${token}`]),
    '-H',
    'Expect:',
    '-F',
    `source=@${file};type=application/octet-stream`,
    url,
  ]);
  return Number(stdout.trim());
}

/** One upload of `file` to the floor server (a fresh directory each time); its time in seconds. */
async function floorUpload(root: string, file: string): Promise<number> {
  const dir = await mkdtemp(path.join(root, 'floor-'));
  const floor = new UploadFloorServer(dir);
  try {
    const url = await floor.listen();
    let status = 0;
    const time = await seconds(async () => {
      status = await curlUpload(url, file);
    });
    if (status !== 202) throw new Error(`the floor server answered ${status}`);
    return time;
  } finally {
    await floor.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * One upload by curl; returns its time and the daemon's peak RSS during it above `baselineKiB`
 * (the settled daemon's RSS before its first upload, so what earlier uploads kept counts too).
 */
async function upload(
  daemon: Daemon,
  file: string,
  baselineKiB: number,
): Promise<{
  seconds: number;
  cpuSeconds: number;
  threadCpu: { main: number; mainSystem: number; others: number[] };
  rssGrowthMiB: number;
  status: number;
}> {
  // Reset the kernel's peak-RSS mark (clear_refs 5) so VmHWM is this upload's peak.
  await new Promise((resolve) => setTimeout(resolve, 300));
  writeFileSync(`/proc/${daemon.pid}/clear_refs`, '5');
  let status = 0;
  const cpuBefore = cpuSeconds(daemon.pid);
  const threadsBefore = threadCpuSeconds(daemon.pid);
  const mainSystemBefore = cpuSeconds(daemon.pid, daemon.pid, 'system');
  const time = await seconds(async () => {
    status = await curlUpload(`http://127.0.0.1:${daemon.port}/builds`, file, daemon.token);
  });
  const peak = statusKiB(daemon.pid, 'VmHWM');
  return {
    seconds: time,
    cpuSeconds: cpuSeconds(daemon.pid) - cpuBefore,
    threadCpu: threadCpuDelta(daemon.pid, threadsBefore, mainSystemBefore),
    rssGrowthMiB: (peak - baselineKiB) / 1024,
    status,
  };
}

interface Case {
  name: 'tar' | 'tar.gz';
  file: string;
  reference: string;
  /** Runs the reference once; resolves to the CPU seconds it used. */
  runReference: () => Promise<number>;
  /** Whether the bare-server floor is timed with it. */
  floor: boolean;
}

/** `uptime`'s load averages (1, 5, 15 min) when the run began: the machine is shared. */
const LOAD_AT_START = os.loadavg();

async function main(): Promise<void> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'kiln-bench-upload-'));
  let daemon: Daemon | null = null;
  try {
    const tar = path.join(root, 'src.tar');
    const gz = path.join(root, 'src.tar.gz');
    await pipeline(Readable.from(tarChunks()), createWriteStream(tar));
    if (only !== 'tar') await execFileAsync('sh', ['-c', 'gzip -1 -c "$1" > "$2"', 'sh', tar, gz]);
    const copy = path.join(root, 'copy.tar');
    const allCases: Case[] = [
      {
        name: 'tar',
        file: tar,
        // Kiln fsyncs an accepted source before it answers, so the copy is fsynced too.
        reference: 'cp of the file to the same disk, then sync of the copy (fsync)',
        runReference: async () => {
          const cpu = await shellCpu('cp "$1" "$2" && sync "$2"', tar, copy);
          await rm(copy);
          return cpu;
        },
        floor: true,
      },
      {
        name: 'tar.gz',
        file: gz,
        reference: 'gzip -dc of the file to /dev/null',
        runReference: () => shellCpu('gzip -dc "$1" > /dev/null', gz),
        floor: false,
      },
    ];
    const cases = allCases.filter((c) => only === undefined || c.name === only);

    const dataDir = path.join(root, 'kiln');
    await mkdir(dataDir);
    daemon = await startDaemon(dataDir);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const baselineKiB = statusKiB(daemon.pid, 'VmRSS');
    const summary = [];
    const details = [];
    for (const c of cases) {
      const bytes = (await stat(c.file)).size;
      const kiln: number[] = [];
      const reference: number[] = [];
      const rss: number[] = [];
      const kilnCpu: number[] = [];
      const threadCpu: { main: number; mainSystem: number; others: number[] }[] = [];
      const referenceCpu: number[] = [];
      const statuses: number[] = [];
      const floor: number[] = [];
      for (let r = 0; r < runs; r++) {
        const kilnFirst = r % 2 === 0;
        const runReference = async () => {
          let cpu = 0;
          reference.push(
            await seconds(async () => {
              cpu = await c.runReference();
            }),
          );
          referenceCpu.push(cpu);
        };
        if (!kilnFirst) await runReference();
        const u = await upload(daemon, c.file, baselineKiB);
        kiln.push(u.seconds);
        rss.push(u.rssGrowthMiB);
        statuses.push(u.status);
        kilnCpu.push(u.cpuSeconds);
        threadCpu.push(u.threadCpu);
        if (c.floor) floor.push(await floorUpload(root, c.file));
        if (kilnFirst) await runReference();
        console.log(
          `${c.name} run ${r}: kiln ${u.seconds.toFixed(2)} s (HTTP ${u.status}, RSS +${u.rssGrowthMiB.toFixed(1)} MiB, CPU ${u.cpuSeconds.toFixed(2)} s: main thread ${u.threadCpu.main} s (system ${u.threadCpu.mainSystem}), others ${u.threadCpu.others.join(' ')}), ${c.floor ? `floor ${floor.at(-1)?.toFixed(2)} s, ` : ''}reference ${reference.at(-1)?.toFixed(2)} s (CPU ${referenceCpu.at(-1)?.toFixed(2)} s), load ${os.loadavg()[0]?.toFixed(1)}`,
        );
      }
      const kilnMedian = median(kiln) ?? Number.NaN;
      const refMedian = median(reference) ?? Number.NaN;
      const ratio = refMedian / kilnMedian;
      const peakGrowth = Math.max(...rss);
      const floorMedian = median(floor);
      const floorNote =
        floorMedian === null
          ? ''
          : `; floor (a bare node:http server writing the body through the same writer, fsynced) ${round(bytes / MiB / floorMedian, 1)} MiB/s, ${round(refMedian / floorMedian, 2)}× the reference`;
      const accepted = statuses.every((s) => s === 202);
      summary.push(
        {
          name: `upload ${c.name} throughput`,
          value: round(bytes / MiB / kilnMedian, 1),
          reference: round(bytes / MiB / refMedian, 1),
          ratio: round(ratio),
          target: THROUGHPUT_TARGET,
          pass: accepted && ratio >= THROUGHPUT_TARGET,
          unit: 'MiB/s',
          better: 'higher' as const,
          note: `${c.reference}${floorNote}`,
        },
        {
          name: `upload ${c.name} peak RSS growth`,
          value: round(peakGrowth, 1),
          reference: RSS_TARGET_MIB,
          ratio: round(peakGrowth / RSS_TARGET_MIB),
          target: 1,
          pass: accepted && peakGrowth <= RSS_TARGET_MIB,
          unit: 'MiB',
          note: `the ${RSS_TARGET_MIB} MiB budget`,
        },
      );
      details.push({
        case: c.name,
        bytes,
        reference: c.reference,
        httpStatus: statuses,
        kilnSeconds: kiln.map((s) => round(s)),
        referenceSeconds: reference.map((s) => round(s)),
        kiln: spread(kiln),
        referenceSpread: spread(reference),
        ...(floor.length === 0
          ? {}
          : {
              floorSeconds: floor.map((s) => round(s)),
              floorSpread: spread(floor),
              floorMiBps: round(bytes / MiB / (floorMedian ?? Number.NaN), 1),
            }),
        kilnMiBps: round(bytes / MiB / kilnMedian, 1),
        referenceMiBps: round(bytes / MiB / refMedian, 1),
        rssGrowthMiB: rss.map((v) => round(v, 1)),
        // CPU seconds used (all threads): what decides the wall time when the cores are shared.
        kilnCpuSeconds: kilnCpu.map((v) => round(v, 2)),
        referenceCpuSeconds: referenceCpu.map((v) => round(v, 2)),
        kilnThreadCpuSeconds: threadCpu,
        cpuRatioKilnOverReference: round((median(kilnCpu) ?? NaN) / (median(referenceCpu) ?? NaN)),
      });
    }
    const result = {
      benchmark: 'upload',
      date: new Date().toISOString(),
      machine: {
        cpus: os.cpus().length,
        node: process.version,
        loadavgAtStart: LOAD_AT_START,
        loadavgAtEnd: os.loadavg(),
      },
      quick,
      generatedTarMiB: totalMiB,
      runs,
      client: 'curl -F (multipart, streamed from the file)',
      pass: summary.every((s) => s.pass),
      summary,
      details,
    };
    const outFile = path.join(import.meta.dirname, 'results', 'upload.json');
    await mkdir(path.dirname(outFile), { recursive: true });
    await writeFile(outFile, `${JSON.stringify(result, null, 2)}\n`);
    console.table(summary);
    if (!result.pass) process.exitCode = 1;
  } finally {
    await daemon?.stop();
    await rm(root, { recursive: true, force: true });
  }
}

await main();
