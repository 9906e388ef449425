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
  errors: string[];
}

const BUCKET_MS = 0.1;
const BUCKETS = 200_000;
const T = Buffer.from(' t=');
const EVENT_LOG = Buffer.from('event: log');
const ID = Buffer.from('\nid: ');
const SEP = Buffer.from('\n\n');

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
    errors: [],
  };
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
        let rest: Buffer | null = null;
        res.on('data', (chunk: Buffer) => {
          report.bytes += chunk.length;
          const at = nowMs();
          const buf: Buffer = rest === null ? chunk : Buffer.concat([rest, chunk]);
          let start = 0;
          for (let sep = buf.indexOf(SEP, start); sep !== -1; sep = buf.indexOf(SEP, start)) {
            const idAt = buf.lastIndexOf(ID, sep);
            if (idAt >= start) {
              const id = Number(buf.toString('latin1', idAt + ID.length, sep));
              if (id !== lastId + 1 && ordered) {
                ordered = false;
                report.outOfOrder += 1;
              }
              lastId = id;
              if (buf.indexOf(EVENT_LOG, start) === start) {
                report.logEvents += 1;
                const tAt = buf.indexOf(T, start);
                if (tAt !== -1 && tAt < sep) {
                  const sent = Number(buf.toString('latin1', tAt + T.length, tAt + T.length + 17));
                  const ms = at - sent;
                  if (Number.isFinite(ms)) {
                    buckets[Math.min(BUCKETS - 1, Math.max(0, Math.floor(ms / BUCKET_MS)))]! += 1;
                  }
                }
              } else if (buf.indexOf('event: result', start) === start) {
                sawResult = true;
              }
            }
            start = sep + SEP.length;
          }
          rest = start >= buf.length ? null : buf.subarray(start);
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
