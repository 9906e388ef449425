/**
 * Event fan-out benchmark (issue 15): FOLLOWERS real SSE clients (bench/sse-followers.ts, a
 * separate process on loopback) follow one build of the real daemon while its guest logs at
 * RATE bytes/s in CHUNK-byte chunks for SECONDS. The guest is a stand-in at the VM boundary
 * (bench/build-runner-stand-in.ts) that calls the real build sink, so every event goes through
 * the manager, the EventLog, SQLite and the SSE route. Targets: every event delivered to every
 * follower in order; p99 delivery latency (stand-in send → follower receive) ≤ 50 ms; daemon
 * RSS growth ≤ 100 MB (this process is the daemon; the followers are not in it). First, in the
 * same run, the same followers read the same chunks from a bare node:http server
 * (bench/sse-floor-server.ts): the floor of this machine, recorded next to Kiln's figures.
 *
 *   npx tsx bench/event-fanout.bench.ts [--quick] [--followers N] [--rate MBps] [--seconds S]
 *   → bench/results/event-fanout.json
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startBenchDaemon } from './bench-daemon.js';
import { writeResult } from './bench-report.js';
import { BuildRunnerStandIn, nowMs } from './build-runner-stand-in.js';
import { SseFloorServer } from './sse-floor-server.js';
import type { FollowersReport } from './sse-followers.js';
import { summaryEntry } from './summarize-entry.js';
import { sampleTar } from '../test/helpers/tar-builder.js';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
function arg(name: string, full: number, quick: number): number {
  const i = args.indexOf(`--${name}`);
  const value = i === -1 ? (QUICK ? quick : full) : Number(args[i + 1]);
  if (!(value > 0)) throw new RangeError(`--${name} must be a positive number`);
  return value;
}
const FOLLOWERS = arg('followers', 1000, 50);
const RATE = arg('rate', 5, 1) * 1_000_000;
const SECONDS = arg('seconds', 10, 3);
const CHUNK = 8192;
const LATENCY_BUDGET_MS = 50;
const RSS_BUDGET_MB = 100;
/** Kiln's p99 may be at most this many times the bare server's (this benchmark's own bound). */
const FLOOR_RATIO_TARGET = 1.5;
const BUCKET_MS = 0.1;
/** Wall time a phase may take before the followers are stopped: three times the logging. */
const DEADLINE_MS = SECONDS * 3000 + 5000;

function percentileOfBuckets(buckets: readonly number[], p: number): number {
  const total = buckets.reduce((a, b) => a + b, 0);
  const rank = Math.ceil((p / 100) * total);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i] ?? 0;
    if (seen >= rank) return (i + 1) * BUCKET_MS;
  }
  return Number.NaN;
}

interface Measured {
  report: FollowersReport;
  wallSeconds: number;
  cpuSeconds: number;
  rssGrowthMB: number;
  /** Growth of this process's V8 heap and of its buffers outside it (frames), at their peaks. */
  heapGrowthMB: number;
  arrayBuffersGrowthMB: number;
  /** This process's event-loop delay while the logs were sent (stalls show here). */
  loopDelayMs: { p99: number; max: number };
  p50: number;
  p99: number;
}

/**
 * Forks the followers, lets them connect to `url`, then runs `produce` (which sends the logs)
 * while sampling this process's RSS and CPU, until every follower saw the end of its stream.
 */
async function measure(
  label: string,
  url: string,
  token: string,
  buildId: string,
  produce: () => void,
): Promise<Measured> {
  const followers = fork(
    path.join(path.dirname(fileURLToPath(import.meta.url)), 'sse-followers.ts'),
    [],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
  try {
    const done = new Promise<FollowersReport>((resolve, reject) => {
      followers.on('message', (m: { type: string }) => {
        if (m.type === 'done') resolve(m as FollowersReport);
      });
      followers.once('exit', (code) => {
        reject(new Error(`followers exited with ${code}`));
      });
    });
    const connected = new Promise<void>((resolve) => {
      followers.on('message', (m: { type: string }) => {
        if (m.type === 'connected') resolve();
      });
    });
    followers.send({ type: 'follow', url, token, buildId, count: FOLLOWERS });
    await connected;
    process.stderr.write(`${label}: ${FOLLOWERS} followers connected\n`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = process.memoryUsage();
    let rssPeak = before.rss;
    let heapPeak = before.heapUsed;
    let buffersPeak = before.arrayBuffers;
    const sampler = setInterval(() => {
      const now = process.memoryUsage();
      rssPeak = Math.max(rssPeak, now.rss);
      heapPeak = Math.max(heapPeak, now.heapUsed);
      buffersPeak = Math.max(buffersPeak, now.arrayBuffers);
    }, 50);
    const loopDelay = monitorEventLoopDelay({ resolution: 5 });
    loopDelay.enable();
    const cpuBefore = process.cpuUsage();
    const started = nowMs();
    produce();
    // Followers that cannot keep up would take minutes; what they got by then is the figure.
    const deadline = setTimeout(() => {
      followers.send({ type: 'stop' });
    }, DEADLINE_MS);
    const report = await done;
    clearTimeout(deadline);
    process.stderr.write(`${label}: done after ${((nowMs() - started) / 1000).toFixed(1)} s\n`);
    const cpu = process.cpuUsage(cpuBefore);
    loopDelay.disable();
    clearInterval(sampler);
    return {
      report,
      wallSeconds: (nowMs() - started) / 1000,
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      rssGrowthMB: Math.max(0, rssPeak - before.rss) / 1e6,
      heapGrowthMB: Math.max(0, heapPeak - before.heapUsed) / 1e6,
      arrayBuffersGrowthMB: Math.max(0, buffersPeak - before.arrayBuffers) / 1e6,
      loopDelayMs: { p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
      p50: percentileOfBuckets(report.latencyBuckets, 50),
      p99: percentileOfBuckets(report.latencyBuckets, 99),
    };
  } finally {
    followers.kill();
  }
}

function describe(m: Measured, expected: number): Record<string, unknown> {
  return {
    receivedLogEvents: m.report.logEvents,
    expectedLogEvents: expected,
    followersInOrder: m.report.inOrder,
    followersOutOfOrder: m.report.outOfOrder,
    followersCompleted: m.report.completed,
    bytesReceived: m.report.bytes,
    wallSeconds: m.wallSeconds,
    deliveredMBps: m.report.bytes / m.wallSeconds / 1e6,
    cpuSeconds: m.cpuSeconds,
    followersCpuSeconds: m.report.cpuSeconds,
    latencyMs: {
      p50: m.p50,
      p90: percentileOfBuckets(m.report.latencyBuckets, 90),
      p99: m.p99,
      max: m.report.latencyBuckets.length * BUCKET_MS,
    },
    rssGrowthMB: m.rssGrowthMB,
    heapGrowthMB: m.heapGrowthMB,
    arrayBuffersGrowthMB: m.arrayBuffersGrowthMB,
    eventLoopDelayMs: m.loopDelayMs,
    errors: m.report.errors.slice(0, 10),
  };
}

async function main(): Promise<void> {
  const logs = { bytesPerSecond: RATE, chunkBytes: CHUNK, seconds: SECONDS };

  // The floor first, on its own server, with nothing else running.
  let floorChunks = 0;
  const floorServer = new SseFloorServer();
  let floor: Measured;
  try {
    const floorUrl = await floorServer.listen();
    let floorRun: Promise<void> = Promise.resolve();
    floor = await measure('floor', floorUrl, 'none', 'floor', () => {
      floorRun = floorServer.run({
        ...logs,
        onChunk: () => {
          floorChunks += 1;
        },
      });
    });
    await floorRun;
  } finally {
    await floorServer.close();
  }

  let chunksSent = 0;
  const runner = new BuildRunnerStandIn({
    held: true,
    logs: {
      ...logs,
      onChunk: () => {
        chunksSent += 1;
      },
    },
  });
  const bench = await startBenchDaemon(runner, { KILN_MAX_LOG_BYTES: '4G' });
  try {
    const token = await bench.token('bench');
    const fd = new FormData();
    fd.append('source', new Blob([sampleTar()]), 'app.tar');
    const res = await fetch(`${bench.url}/builds`, {
      method: 'POST',
      body: fd,
      headers: { authorization: `Bearer ${token}` },
    });
    if (res.status !== 202) throw new Error(`POST /builds answered ${res.status}`);
    const { id } = (await res.json()) as { id: string };
    while (runner.runsStarted < 1) await new Promise((resolve) => setTimeout(resolve, 10));
    const kiln = await measure('kiln', bench.url, token, id, () => {
      runner.release();
    });

    const expected = FOLLOWERS * chunksSent;
    const figures = {
      quick: QUICK,
      followers: FOLLOWERS,
      logBytesPerSecond: RATE,
      chunkBytes: CHUNK,
      logSeconds: SECONDS,
      chunksSent,
      kiln: describe(kiln, expected),
      floor: {
        ...describe(floor, FOLLOWERS * floorChunks),
        server:
          'bare node:http, each frame encoded once, written per turn in corked runs of 256 KiB',
      },
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    writeResult('event-fanout', figures, [
      summaryEntry({
        name: 'log events delivered in order to every follower',
        value: kiln.report.outOfOrder === 0 ? kiln.report.logEvents : 0,
        reference: expected,
        target: 1,
        better: 'higher',
        note: 'value: log events received (0 if any follower saw an id out of order)',
      }),
      summaryEntry({
        name: 'p99 delivery latency',
        value: kiln.p99,
        reference: LATENCY_BUDGET_MS,
        target: 1,
        unit: 'ms',
        note: `reference: the 50 ms budget (the bare node:http floor in the same run: p99 ${floor.p99.toFixed(1)} ms)`,
      }),
      summaryEntry({
        name: 'p99 delivery latency vs a bare node:http server',
        value: kiln.p99,
        reference: floor.p99,
        target: FLOOR_RATIO_TARGET,
        unit: 'ms',
        note: 'reference: the same followers and chunks from bench/sse-floor-server.ts, same run',
      }),
      summaryEntry({
        name: 'daemon RSS growth',
        value: kiln.rssGrowthMB,
        reference: RSS_BUDGET_MB,
        target: 1,
        unit: 'MB',
        note: 'reference: the 100 MB budget',
      }),
    ]);
  } finally {
    await bench.close();
  }
}

await main();
