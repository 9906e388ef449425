import http from 'node:http';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SseEventHub } from '../../src/http/sse-event-hub.js';
import { SseFollower } from '../../src/http/sse-follower.js';
import type { SseSink } from '../../src/http/sse-sink.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { okOutcome } from '../helpers/fake-build-runner.js';

let h: Harness;
let token: string;

beforeEach(async () => {
  h = await createHarness({ env: { KILN_MAX_LOG_BYTES: '64M' } });
  token = await h.token('acme');
});
afterEach(async () => {
  await h.close();
});

function submit(): Promise<string> {
  return h.submitSample(token);
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** A small deterministic generator (mulberry32), so a failing interleaving can be replayed. */
function random(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The event ids in SSE text, in order. */
function idsIn(text: string): number[] {
  return [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
}

/**
 * A sink whose socket is full at random: a write answers false and the drain comes later
 * (next tick, next turn, a timer), or the drain comes while the write is still running (as a
 * web stream's pull can) and the write answers either way.
 */
function racingSink(next: () => number, drained: () => void): SseSink & { ids: number[] } {
  const ids: number[] = [];
  return {
    ids,
    write(chunks) {
      ids.push(...idsIn(Buffer.concat(chunks).toString('utf8')));
      const roll = next();
      if (roll < 0.3) return true;
      if (roll < 0.45) {
        drained();
        return next() < 0.5;
      }
      if (roll < 0.6) process.nextTick(drained);
      else if (roll < 0.75) queueMicrotask(drained);
      else if (roll < 0.9) setImmediate(drained);
      else setTimeout(drained, 1);
      return false;
    },
    end() {},
    destroy() {},
  };
}

describe('SseFollower', () => {
  it('delivers the last event to every follower however drains and new events interleave, with no later event to push it out', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const hub = new SseEventHub(h.events, {
      windowBytes: 64 * 1024,
      pageBytes: 4096,
      maxPageEvents: 16,
      pageCacheBytes: 256 * 1024,
      segmentBytes: 2048,
      pendingBytes: 64 * 1024,
      minWriteBytes: 1024,
    });
    const next = random(15);
    const sinks: ReturnType<typeof racingSink>[] = [];
    const followers: SseFollower[] = [];
    for (let i = 0; i < 200; i++) {
      const follower: SseFollower = new SseFollower({
        hub,
        buildId: id,
        lastId: 0,
        follow: true,
        writeBytes: 4096,
        heartbeatMs: 60_000,
        heartbeat: () => Buffer.from('event: heartbeat\ndata: {}\n\n'),
        isFinished: () => false,
        onError: (err) => {
          throw err;
        },
      });
      const sink = racingSink(next, () => {
        follower.drained();
      });
      sinks.push(sink);
      followers.push(follower);
      follower.start(sink);
    }
    const filler = 'x'.repeat(700);
    for (let i = 0; i < 400; i++) {
      run.sink.log('stdout', `#${i} ${filler}\n`, h.time.now());
      const pause = next();
      if (pause < 0.3) await turn();
      else if (pause < 0.4) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    const last = h.events.read(id, 0, 10_000).at(-1)!.id;
    // Nothing is written after the last event: each follower must get there on its own.
    await eventually(() => sinks.every((s) => s.ids.at(-1) === last), 10_000).catch(
      () => undefined,
    );
    const behind = sinks.filter((s) => s.ids.at(-1) !== last).length;
    expect(behind).toBe(0);
    for (const sink of sinks) {
      expect(sink.ids).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    }
    for (const follower of followers) follower.closed();
    run.finish(okOutcome(`acme/${id}:${id}`));
  });

  it('delivers the last event to many slow socket clients whose drains race the writer', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const next = random(42);
    const agent = new http.Agent({ maxSockets: 1000 });
    const clients = Array.from({ length: 60 }, () => ({ text: '', lastId: 0 }));
    const requests = clients.map(
      (client) =>
        new Promise<http.IncomingMessage>((resolve, reject) => {
          const req = http.get(
            `${h.url}/builds/${id}/events?follow=true`,
            { agent, headers: { authorization: `Bearer ${token}` } },
            (res) => {
              res.setEncoding('utf8');
              res.on('data', (part: string) => {
                client.text += part;
                const cut = client.text.lastIndexOf('\n\n');
                if (cut === -1) return;
                const ids = idsIn(client.text.slice(0, cut + 2));
                client.text = client.text.slice(cut + 2);
                client.lastId = ids.at(-1) ?? client.lastId;
                // Stop reading for a while now and then, so the daemon's writes back up.
                if (next() < 0.2) {
                  res.pause();
                  setTimeout(() => res.resume(), Math.floor(next() * 20));
                }
              });
              resolve(res);
            },
          );
          req.on('error', reject);
        }),
    );
    const responses = await Promise.all(requests);
    const filler = 'y'.repeat(16 * 1024);
    for (let i = 0; i < 600; i++) {
      run.sink.log('stdout', `#${i} ${filler}\n`, h.time.now());
      if (next() < 0.25) await turn();
    }
    const last = h.events.read(id, 0, 10_000).at(-1)!.id;
    await eventually(() => clients.every((c) => c.lastId === last), 20_000).catch(() => undefined);
    expect(clients.filter((c) => c.lastId !== last).length).toBe(0);
    run.finish(okOutcome(`acme/${id}:${id}`));
    for (const res of responses) res.destroy();
    agent.destroy();
  });
});
