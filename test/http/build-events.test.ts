import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually, readSse } from '../helpers/api-server.js';
import { okOutcome } from '../helpers/fake-build-runner.js';

let h: Harness;
let token: string;

beforeEach(async () => {
  h = await createHarness({ heartbeatMs: 40, env: { KILN_MAX_LOG_BYTES: '4K' } });
  token = await h.token('acme');
});
afterEach(async () => {
  await h.close();
});

function submit(): Promise<string> {
  return h.submitSample(token);
}

function events(id: string, query = '', headers: Record<string, string> = {}) {
  return fetch(`${h.url}/builds/${id}/events${query}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
}

describe('GET /builds/:id/events', () => {
  it('replays stored events with ids and closes without follow', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    h.runner.runOf(id).sink.status('booting');
    h.runner.runOf(id).sink.log('stdout', 'hello\n', h.time.now());
    const res = await events(id);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { events: got, ended } = await readSse(res);
    expect(ended).toBe(true);
    expect(got.map((e) => [e.id, e.event])).toEqual([
      ['1', 'status'],
      ['2', 'status'],
      ['3', 'log'],
    ]);
    expect(JSON.parse(got[2]!.data)).toMatchObject({ stream: 'stdout', data: 'hello\n' });
  });

  it('sends exactly what was missed after Last-Event-ID', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const sink = h.runner.runOf(id).sink;
    sink.status('booting');
    sink.status('building');
    sink.log('stdout', 'a\n', h.time.now());
    const { events: got } = await readSse(await events(id, '', { 'last-event-id': '2' }));
    expect(got.map((e) => e.id)).toEqual(['3', '4']);
  });

  it('follows live events, sends heartbeats and closes after the result', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(id);
    const res = await events(id, '?follow=true');
    let finished = false;
    const reading = readSse(res, undefined, (event) => {
      // Once a heartbeat went out while the build was quiet, let the build end.
      if (event.event !== 'heartbeat' || finished) return;
      finished = true;
      run.sink.log('stderr', 'working\n', h.time.now());
      run.finish(okOutcome(`acme/${id}:${id}`));
    });
    run.sink.status('booting');
    const { events: got, ended } = await reading;
    expect(ended).toBe(true);
    const typed = got.filter((e) => e.event !== 'heartbeat');
    expect(typed.map((e) => e.event)).toEqual(['status', 'status', 'log', 'status', 'result']);
    expect(typed.map((e) => Number(e.id))).toEqual([1, 2, 3, 4, 5]);
    expect(got.some((e) => e.event === 'heartbeat' && e.id === undefined)).toBe(true);
    // The result carries the build's time account, its after-finish steps still to come.
    expect(JSON.parse(typed.at(-1)!.data)).toMatchObject({
      status: 'ready',
      timings: { phases: { upload: 0, queued: 0 }, unaccountedSeconds: 0, afterFinish: null },
    });
  });

  it('closes a followed stream of a finished build right after the final event', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    h.runner.runOf(id).finish(okOutcome('acme/x:y'));
    await eventually(() => h.store.get(id)?.status === 'ready');
    const { events: got, ended } = await readSse(await events(id, '?follow=true'));
    expect(ended).toBe(true);
    expect(got.at(-1)?.event).toBe('result');
    const resumed = await readSse(
      await events(id, '?follow=true', { 'last-event-id': got.at(-1)!.id! }),
    );
    expect(resumed).toEqual({ events: [], ended: true });
  });

  it('caps the stored log with one truncation marker', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const sink = h.runner.runOf(id).sink;
    for (let i = 0; i < 10; i++) sink.log('stdout', `${'x'.repeat(999)}\n`, h.time.now());
    const { events: got } = await readSse(await events(id));
    const logs = got
      .filter((e) => e.event === 'log')
      .map((e) => JSON.parse(e.data) as { truncated?: boolean });
    expect(logs).toHaveLength(5);
    expect(logs.filter((l) => l.truncated)).toHaveLength(1);
    expect(logs.at(-1)?.truncated).toBe(true);
  });

  it('answers 404 BUILD_NOT_FOUND to another tenant', async () => {
    const id = await submit();
    const other = await h.token('other');
    const res = await fetch(`${h.url}/builds/${id}/events`, {
      headers: { authorization: `Bearer ${other}` },
    });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('BUILD_NOT_FOUND');
  });
});

describe('GET /builds/:id/logs', () => {
  it('returns the log as plain text, or its last lines with tail', async () => {
    const id = await submit();
    await h.runner.waitForRuns(1);
    const sink = h.runner.runOf(id).sink;
    sink.log('stdout', 'one\ntwo\n', h.time.now());
    sink.log('stderr', 'three\n', h.time.now());
    const full = await fetch(`${h.url}/builds/${id}/logs`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(full.headers.get('content-type')).toMatch(/^text\/plain/);
    expect(await full.text()).toBe('one\ntwo\nthree\n');
    const tail = await fetch(`${h.url}/builds/${id}/logs?tail=2`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(await tail.text()).toBe('two\nthree\n');
  });
});
