import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SseEventHub, type FrameRun } from '../../src/http/sse-event-hub.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { readSse, type SseEvent } from '../helpers/api-server.js';
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

function follow(id: string): Promise<Response> {
  return fetch(`${h.url}/builds/${id}/events?follow=true`, {
    headers: { authorization: `Bearer ${token}` },
  });
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Ids 1…n one by one, `result` last, and the `#<i>` log chunks in the order they were written. */
function expectComplete(events: SseEvent[], chunks: number): void {
  const stored = events.filter((e) => e.event !== 'heartbeat');
  expect(stored.map((e) => Number(e.id))).toEqual(stored.map((_, i) => i + 1));
  expect(stored.at(-1)?.event).toBe('result');
  const logs = stored
    .filter((e) => e.event === 'log')
    .map((e) => /^#(\d+)/.exec((JSON.parse(e.data) as { data: string }).data)?.[1]);
  expect(logs).toEqual(Array.from({ length: chunks }, (_, i) => String(i)));
}

describe('SSE fan-out', () => {
  it('sends every follower the same live events, in order, and closes after the result', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const followers = await Promise.all([follow(id), follow(id), follow(id)]);
    const reading = followers.map((res) => readSse(res));
    // Several events per turn of the event loop, over many turns.
    for (let i = 0; i < 300; i++) {
      run.sink.log('stdout', `#${i} line\n`, h.time.now());
      if (i % 7 === 0) await turn();
    }
    run.finish(okOutcome(`acme/${id}:${id}`));
    const results = await Promise.all(reading);
    for (const { events, ended } of results) {
      expect(ended).toBe(true);
      expectComplete(events, 300);
    }
    expect(results[1]?.events.map((e) => e.data)).toEqual(results[0]?.events.map((e) => e.data));
  });

  it('gives a follower that stopped reading every event in order once it reads again', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const stalled = await follow(id);
    const reading = readSse(await follow(id));
    // 16 MiB of log while one follower reads nothing: far more than its socket and its
    // 1 MiB of waiting frames hold, so it has to fall back to the store.
    const filler = 'x'.repeat(8 * 1024);
    const chunks = 2048;
    for (let i = 0; i < chunks; i++) {
      run.sink.log('stdout', `#${i} ${filler}\n`, h.time.now());
      if (i % 16 === 0) await turn();
    }
    run.finish(okOutcome(`acme/${id}:${id}`));
    const live = await reading;
    expectComplete(live.events, chunks);
    const late = await readSse(stalled);
    expect(late.ended).toBe(true);
    expectComplete(late.events, chunks);
  });

  it('replays from the store to a follower that joins mid-build, then continues live', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    for (let i = 0; i < 150; i++) run.sink.log('stdout', `#${i}\n`, h.time.now());
    const reading = readSse(await follow(id));
    for (let i = 150; i < 300; i++) {
      run.sink.log('stdout', `#${i}\n`, h.time.now());
      if (i % 5 === 0) await turn();
    }
    run.finish(okOutcome(`acme/${id}:${id}`));
    expectComplete((await reading).events, 300);
  });
});

/** The ids of the frames in a run, in order. */
function idsOf(run: FrameRun): number[] {
  const text = Buffer.concat(run.chunks).toString('utf8');
  return [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]));
}

describe('SseEventHub', () => {
  it('gives readers views of one encoding, from the window or from shared stored pages, every id once in order', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    // A window that keeps only the newest batch: older events come from pages of 4.
    const hub = new SseEventHub(h.events, {
      windowBytes: 1,
      pageBytes: 1,
      maxPageEvents: 4,
      pageCacheBytes: 4096,
      segmentBytes: 64,
      pendingBytes: 1 << 20,
      minWriteBytes: 1,
    });
    let wakes = 0;
    const stop = hub.follow(id, () => {
      wakes += 1;
    });
    for (let i = 0; i < 60; i++) {
      run.sink.log('stdout', `#${i} line\n`, h.time.now());
      if (i % 10 === 9) await turn();
    }
    await turn();
    expect(wakes).toBe(6);
    const stored = h.events.read(id, 0, 1000).map((e) => e.id);
    const newest = stored.at(-1)!;
    const fromWindow = [hub.framesFrom(id, newest, 1), hub.framesFrom(id, newest, 1)];
    expect(fromWindow[0]?.chunks[0]?.buffer).toBe(fromWindow[1]?.chunks[0]?.buffer);
    const fromPage = [hub.framesFrom(id, 2, 1), hub.framesFrom(id, 2, 1)];
    expect(fromPage[0]?.chunks[0]?.buffer).toBe(fromPage[1]?.chunks[0]?.buffer);
    const seen: number[] = [];
    for (
      let next = 1, r = hub.framesFrom(id, 1, 300);
      r !== null;
      r = hub.framesFrom(id, next, 300)
    ) {
      expect(r.bytes).toBe(Buffer.concat(r.chunks).length);
      const ids = idsOf(r);
      expect(ids.at(-1)).toBe(r.lastId);
      seen.push(...ids);
      next = r.lastId + 1;
    }
    expect(seen).toEqual(stored);
    stop();
  });

  it('hands a reader views that keep alive about what they show, not a whole batch or page', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const segmentBytes = 12 * 1024;
    const hub = new SseEventHub(h.events, {
      windowBytes: 1 << 20,
      pageBytes: 40 * 1024,
      maxPageEvents: 8,
      pageCacheBytes: 1 << 20,
      segmentBytes,
      pendingBytes: 1 << 20,
      minWriteBytes: 1,
    });
    const stop = hub.follow(id, () => undefined);
    // Frames of about 5 KiB, 64 of them in one batch of the window and in pages of 8.
    const filler = 'z'.repeat(5000);
    const before = h.events.read(id, 0, 1000).length;
    for (let i = 0; i < 64; i++)
      run.sink.log(
        'stdout',
        `#${i} ${filler}
`,
        h.time.now(),
      );
    await turn();
    const stored = h.events.read(id, 0, 1000).length;
    for (const fromStore of [false, true]) {
      for (let from = before + 1; from <= stored; from += 5) {
        const r = hub.framesFrom(id, from, 1, fromStore)!;
        expect(idsOf(r)).toEqual([from]);
        const pinned = new Set(r.chunks.map((chunk) => chunk.buffer));
        const pinnedBytes = [...pinned].reduce((sum, buffer) => sum + buffer.byteLength, 0);
        expect(pinnedBytes).toBeLessThanOrEqual(r.bytes + segmentBytes);
      }
    }
    stop();
  });

  it('shares a page of about pageBytes between readers inside it, and fits a new page between known ones', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const filler = 'p'.repeat(1000);
    for (let i = 0; i < 200; i++) run.sink.log('stdout', `#${i} ${filler}\n`, h.time.now());
    const hub = new SseEventHub(h.events, {
      windowBytes: 0,
      pageBytes: 10 * 1024,
      maxPageEvents: 64,
      pageCacheBytes: 1 << 20,
      segmentBytes: 1 << 20,
      pendingBytes: 1 << 20,
      minWriteBytes: 1,
    });
    const base = h.events.read(id, 0, 1000).find((e) => e.data.type === 'log')!.id;
    // Sizes its reads from the frames seen so far: the second page is about 10 KiB.
    hub.framesFrom(id, base, 1);
    const a = hub.framesFrom(id, base + 50, 1)!;
    const b = hub.framesFrom(id, base + 53, 1)!;
    expect(b.chunks[0]?.buffer).toBe(a.chunks[0]?.buffer);
    expect(a.chunks[0]!.buffer.byteLength).toBeLessThan(16 * 1024);
    expect(a.chunks[0]!.buffer.byteLength).toBeGreaterThanOrEqual(8 * 1024);
    // Ids before base + 50 and after the first page: a page of their own, ending where the known one starts.
    const seen: number[] = [];
    for (let next = base + 40, r = hub.framesFrom(id, next, 1); next < base + 60;) {
      seen.push(...idsOf(r!));
      next = r!.lastId + 1;
      r = hub.framesFrom(id, next, 1);
    }
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => base + 40 + i));
    expect(hub.framesFrom(id, base + 50, 1)?.chunks[0]?.buffer).toBe(a.chunks[0]?.buffer);
  });

  it('reads a stored page again once a reader needs events stored after it was read', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const hub = new SseEventHub(h.events, {
      windowBytes: 0,
      pageBytes: 1 << 20,
      maxPageEvents: 64,
      pageCacheBytes: 1 << 20,
      segmentBytes: 1 << 14,
      pendingBytes: 1 << 20,
      minWriteBytes: 1,
    });
    const first = hub.framesFrom(id, 1, 1 << 20);
    expect(first).not.toBeNull();
    expect(hub.framesFrom(id, first!.lastId + 1, 1 << 20)).toBeNull();
    run.sink.log('stdout', '#0 later\n', h.time.now());
    const later = hub.framesFrom(id, first!.lastId + 1, 1 << 20);
    expect(later && idsOf(later)).toEqual([first!.lastId + 1]);
  });

  it('streams in order to a client without a node response (app.request) and ends after the result', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const res = await h.app.request(`/builds/${id}/events?follow=true`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reading = readSse(res);
    const filler = 'x'.repeat(8 * 1024);
    for (let i = 0; i < 300; i++) {
      run.sink.log('stdout', `#${i} ${filler}\n`, h.time.now());
      if (i % 7 === 0) await turn();
    }
    run.finish(okOutcome(`acme/${id}:${id}`));
    const { events, ended } = await reading;
    expect(ended).toBe(true);
    expectComplete(events, 300);
  });
});
