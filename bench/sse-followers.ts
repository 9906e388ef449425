/**
 * The followers of the event fan-out benchmark, in their own process so that reading does not
 * take the daemon's event loop: COUNT real HTTP clients on loopback, each following one
 * build's SSE stream until its `result` event. Each checks that event ids arrive one by one
 * with no gap (every event delivered, in order) and measures, for each `log` event, the time
 * from the stand-in guest's send stamp (`t=<ms>` in the chunk) to its arrival here.
 *
 * Forked by bench/event-fanout.bench.ts; talks to it over the IPC channel:
 *   parent → { type: 'follow', url, token, buildId, count }
 *   parent → { type: 'stop' } at its deadline: the followers report what they have so far
 *   child  → { type: 'connected' } once every stream answered 200, then { type: 'done', … }
 */
import { Agent, request } from 'node:http';

/** What the followers report when every stream ended. */
export interface FollowersReport {
  type: 'done';
  followers: number;
  /** Followers that saw ids 1, 2, 3, … to the result with no gap and no repeat. */
  inOrder: number;
  /** Followers that saw a gap or a repeat in the ids (at any time, ended or not). */
  outOfOrder: number;
  /** Followers whose stream ended with the `result` event. */
  completed: number;
  /** `log` events received, summed over followers. */
  logEvents: number;
  bytes: number;
  /** Latency histogram: count per 0.1 ms bucket (the last bucket holds everything later). */
  latencyBuckets: number[];
  /** CPU seconds this process used from the first connection to the report (it shares the cores). */
  cpuSeconds: number;
  errors: string[];
}

const BUCKET_MS = 0.1;
const BUCKETS = 200_000;
const T = Buffer.from(' t=');
/** Bytes of a line kept to look at: the `t=` stamp is near the start of a log's data. */
const HEAD = 256;
const NL = 0x0a;
const SPACE = 0x20;
const EVENT_LOG = Buffer.from('event: log');
const EVENT_RESULT = Buffer.from('event: result');
const ID = Buffer.from('id: ');
const DATA = Buffer.from('data: ');

type FrameType = 'log' | 'result' | 'other';

/**
 * Finds the frames of one SSE stream by its line breaks alone (the data is JSON, so a line
 * break only ends a field): one native scan per line and nothing copied but the first bytes
 * of a line cut by a read, so the followers' process is not what the benchmark measures.
 * Calls `onFrame` at each `id:` line with the frame's type and, for a log, the send stamp.
 */
class FrameScanner {
  private carry: Buffer | null = null;
  private type: FrameType = 'other';
  private sentMs = Number.NaN;

  constructor(
    private readonly onFrame: (id: number, type: FrameType, sentMs: number, at: number) => void,
  ) {}

  push(chunk: Buffer, at: number): void {
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(NL, pos);
      const end = nl === -1 ? chunk.length : nl;
      const head = chunk.subarray(pos, Math.min(end, pos + HEAD));
      if (this.carry !== null) {
        if (this.carry.length < HEAD) {
          this.carry = Buffer.concat([this.carry, head.subarray(0, HEAD - this.carry.length)]);
        }
        if (nl === -1) return;
        this.line(this.carry, at);
        this.carry = null;
      } else if (nl === -1) {
        this.carry = Buffer.from(head);
        return;
      } else {
        this.line(head, at);
      }
      pos = nl + 1;
    }
  }

  private line(line: Buffer, at: number): void {
    if (line.length === 0) {
      this.type = 'other';
    } else if (line.indexOf(ID) === 0) {
      this.onFrame(Number(line.toString('latin1', ID.length)), this.type, this.sentMs, at);
    } else if (line.indexOf(EVENT_LOG) === 0 && line.length === EVENT_LOG.length) {
      this.type = 'log';
      this.sentMs = Number.NaN;
    } else if (line.indexOf(EVENT_RESULT) === 0) {
      this.type = 'result';
    } else if (this.type === 'log' && line.indexOf(DATA) === 0) {
      const t = line.indexOf(T);
      const stop = t === -1 ? -1 : line.indexOf(SPACE, t + T.length);
      if (stop !== -1) this.sentMs = Number(line.toString('latin1', t + T.length, stop));
    }
  }
}

/** Set by follow(): reports now and closes every stream. */
let stopAll: () => void = () => undefined;

function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

function follow(message: { url: string; token: string; buildId: string; count: number }): void {
  const agent = new Agent({ keepAlive: false, maxSockets: Infinity });
  const buckets = new Uint32Array(BUCKETS);
  const report: FollowersReport = {
    type: 'done',
    followers: message.count,
    inOrder: 0,
    outOfOrder: 0,
    completed: 0,
    logEvents: 0,
    bytes: 0,
    latencyBuckets: [],
    cpuSeconds: 0,
    errors: [],
  };
  const cpuBefore = process.cpuUsage();
  let connected = 0;
  let ended = 0;
  let reported = false;
  const requests: ReturnType<typeof request>[] = [];
  const finishReport = () => {
    if (reported) return;
    reported = true;
    agent.destroy();
    // Trailing zero buckets are left off.
    let last = BUCKETS - 1;
    while (last > 0 && buckets[last] === 0) last--;
    report.latencyBuckets = Array.from(buckets.subarray(0, last + 1));
    const cpu = process.cpuUsage(cpuBefore);
    report.cpuSeconds = (cpu.user + cpu.system) / 1e6;
    process.send?.(report);
  };
  const endOne = () => {
    ended += 1;
    if (ended === message.count) finishReport();
  };
  stopAll = () => {
    report.errors.push(`stopped at the deadline with ${message.count - ended} streams open`);
    finishReport();
    for (const req of requests) req.destroy();
  };
  for (let i = 0; i < message.count; i++) {
    const req = request(
      `${message.url}/builds/${message.buildId}/events?follow=true`,
      { agent, headers: { authorization: `Bearer ${message.token}` } },
      (res) => {
        if (res.statusCode !== 200) {
          report.errors.push(`follower ${i}: status ${res.statusCode}`);
          res.resume();
          res.once('end', endOne);
          return;
        }
        connected += 1;
        if (connected === message.count) process.send?.({ type: 'connected' });
        let lastId = 0;
        let ordered = true;
        let sawResult = false;
        const scan = new FrameScanner((id, type, sentMs, at) => {
          if (id !== lastId + 1 && ordered) {
            ordered = false;
            report.outOfOrder += 1;
          }
          lastId = id;
          if (type === 'log') {
            report.logEvents += 1;
            const ms = at - sentMs;
            if (Number.isFinite(ms)) {
              buckets[Math.min(BUCKETS - 1, Math.max(0, Math.floor(ms / BUCKET_MS)))]! += 1;
            }
          } else if (type === 'result') {
            sawResult = true;
          }
        });
        res.on('data', (chunk: Buffer) => {
          report.bytes += chunk.length;
          scan.push(chunk, nowMs());
        });
        res.once('end', () => {
          if (sawResult) report.completed += 1;
          if (ordered && sawResult) report.inOrder += 1;
          endOne();
        });
        res.once('error', (err) => {
          report.errors.push(`follower ${i}: ${err.message}`);
        });
      },
    );
    req.once('error', (err) => {
      if (reported) return;
      report.errors.push(`follower ${i}: ${err.message}`);
      endOne();
    });
    req.end();
    requests.push(req);
  }
}

process.on(
  'message',
  (message: { type: string; url: string; token: string; buildId: string; count: number }) => {
    if (message.type === 'follow') follow(message);
    if (message.type === 'stop') stopAll();
  },
);
