/**
 * Event fan-out benchmark (issue 15): FOLLOWERS real SSE clients (bench/sse-followers.ts, a
 * separate process on loopback) follow one build of the real daemon while its guest logs at
 * RATE bytes/s in CHUNK-byte chunks for SECONDS. The guest is a stand-in at the VM boundary
 * (bench/build-runner-stand-in.ts) that calls the real build sink, so every event goes through
 * the manager, the EventLog, SQLite and the SSE route. Targets: every event delivered to every
 * follower in order; p99 delivery latency (stand-in send → follower receive) ≤ 50 ms; daemon
 * RSS growth ≤ 100 MB (this process is the daemon; the followers are not in it).
 *
 *   npx tsx bench/event-fanout.bench.ts [--quick] [--followers N] [--rate MBps] [--seconds S]
 *   → bench/results/event-fanout.json
 */
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startBenchDaemon } from './bench-daemon.js';
import { writeResult } from './bench-report.js';
import { BuildRunnerStandIn, nowMs } from './build-runner-stand-in.js';
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
const BUCKET_MS = 0.1;

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

async function main(): Promise<void> {
  let chunksSent = 0;
  const runner = new BuildRunnerStandIn({
    held: true,
    logs: {
      bytesPerSecond: RATE,
      chunkBytes: CHUNK,
      seconds: SECONDS,
      onChunk: () => {
        chunksSent += 1;
      },
    },
  });
  const bench = await startBenchDaemon(runner, { KILN_MAX_LOG_BYTES: '4G' });
  const followers = fork(
    path.join(path.dirname(fileURLToPath(import.meta.url)), 'sse-followers.ts'),
    [],
    { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
  );
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
    followers.send({ type: 'follow', url: bench.url, token, buildId: id, count: FOLLOWERS });
    await connected;
    await new Promise((resolve) => setTimeout(resolve, 500));
    global.gc?.();
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    }, 50);
    const cpuBefore = process.cpuUsage();
    const started = nowMs();
    runner.release();
    const report = await done;
    const wallSeconds = (nowMs() - started) / 1000;
    const cpu = process.cpuUsage(cpuBefore);
    clearInterval(sampler);

    const expected = FOLLOWERS * chunksSent;
    const p99 = percentileOfBuckets(report.latencyBuckets, 99);
    const figures = {
      quick: QUICK,
      followers: FOLLOWERS,
      logBytesPerSecond: RATE,
      chunkBytes: CHUNK,
      logSeconds: SECONDS,
      chunksSent,
      expectedLogEvents: expected,
      receivedLogEvents: report.logEvents,
      followersInOrder: report.inOrder,
      followersCompleted: report.completed,
      bytesReceived: report.bytes,
      wallSeconds,
      deliveredMBps: report.bytes / wallSeconds / 1e6,
      daemonCpuSeconds: (cpu.user + cpu.system) / 1e6,
      latencyMs: {
        p50: percentileOfBuckets(report.latencyBuckets, 50),
        p90: percentileOfBuckets(report.latencyBuckets, 90),
        p99,
        max: report.latencyBuckets.length * BUCKET_MS,
      },
      rssBeforeMB: rssBefore / 1e6,
      rssPeakMB: rssPeak / 1e6,
      rssGrowthMB: (rssPeak - rssBefore) / 1e6,
      errors: report.errors.slice(0, 10),
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
    writeResult('event-fanout', figures, [
      summaryEntry({
        name: 'log events delivered in order to every follower',
        value: report.inOrder === FOLLOWERS ? report.logEvents : 0,
        reference: expected,
        target: 1,
        better: 'higher',
        note: 'value: events received when every follower saw every id in order, else 0',
      }),
      summaryEntry({
        name: 'p99 delivery latency',
        value: p99,
        reference: LATENCY_BUDGET_MS,
        target: 1,
        unit: 'ms',
        note: 'reference: the 50 ms budget',
      }),
      summaryEntry({
        name: 'daemon RSS growth',
        value: Math.max(0, (rssPeak - rssBefore) / 1e6),
        reference: RSS_BUDGET_MB,
        target: 1,
        unit: 'MB',
        note: 'reference: the 100 MB budget',
      }),
    ]);
  } finally {
    followers.kill();
    await bench.close();
  }
}

await main();
