import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { Build, BuildStatus } from '../../src/builds/build.js';
import type { SourceSummary } from '../../src/builds/source-inspector.js';
import { accountTime } from '../../src/builds/time-account.js';
import { AppError } from '../../src/errors/app-error.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';
import { eventually } from '../helpers/api-server.js';
import { FakeBuildRunner, okOutcome } from '../helpers/fake-build-runner.js';
import { imageManifest, sha256Digest, testBlob } from '../helpers/registry-oci-content.js';

const open: Harness[] = [];
afterEach(async () => {
  for (const h of open.splice(0)) await h.close();
});

/** Simulates a daemon killed with SIGKILL: its database handle goes, nothing else runs. */
function crash(h: Harness): void {
  open.splice(open.indexOf(h), 1);
  h.db.close();
}

async function harness(
  env: Record<string, string> = {},
  dataDir?: string,
  runner?: FakeBuildRunner,
) {
  const h = await createHarness({
    env,
    ...(dataDir ? { dataDir } : {}),
    ...(runner ? { runner } : {}),
  });
  open.push(h);
  return h;
}

/** A source summary as the upload inspector reports it for a one-byte archive. */
const SOURCE: SourceSummary = {
  sizeBytes: 1,
  sha256: 'a'.repeat(64),
  compression: 'none',
  entries: 1,
  unpackedBytes: 1,
};

/** Accepts a build through the manager, as POST /builds does, with these multipart fields. */
async function submit(
  h: Harness,
  tenant: string,
  fields: Record<string, string> = {},
): Promise<Build> {
  const view = await h.manager.accept(tenant, async (target) => {
    await writeFile(target.partialPath, 'x');
    return { fields: new Map(Object.entries(fields)), secrets: new Map(), source: SOURCE };
  });
  return view.build;
}

function statusOf(h: Harness, build: Build): BuildStatus | undefined {
  return h.store.get(build.id)?.status;
}

function eventTypes(h: Harness, build: Build): string[] {
  return h.events
    .read(build.id, 0, 1000)
    .map((e) => (e.data.type === 'status' ? `status:${e.data.status}` : e.data.type));
}

/** Lets the manager's promise chains settle (no timers involved). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
  await new Promise((resolve) => setImmediate(resolve));
}

describe('BuildManager lifecycle', () => {
  it('runs a build to ready with image_ref on the public host, events and timings', async () => {
    const h = await harness({ KILN_PUBLIC_URL: 'https://kiln.example:8443' });
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(b.id);
    // The registry's own build token: accepted on /v2 while the build runs.
    const ping = await h.app.request('/v2/', {
      headers: { authorization: `Bearer ${run.input.registryToken}` },
    });
    expect(ping.status).toBe(200);
    expect(h.manager.isBuildActive(b.id)).toBe(true);
    run.sink.status('booting');
    run.sink.mark('vm_start', h.time.now());
    h.time.advance(1500);
    run.sink.mark('agent', h.time.now());
    run.sink.status('building');
    run.sink.phase('building');
    run.sink.log('stdout', 'step 1\n', h.time.now());
    run.sink.status('pushing');
    h.time.advance(10_000);
    run.finish(okOutcome(`acme/${b.id}:${b.id}`));
    await settle();
    const done = h.store.get(b.id)!;
    expect(done.status).toBe('ready');
    expect(done.result?.imageRef).toBe(`kiln.example:8443/acme/${b.id}:${b.id}`);
    expect(accountTime(done.timings, done.finishedAt!.getTime())).toMatchObject({
      phases: { vm_start: 1.5, extracting: 1, building: 3, pushing: 1, agent_other: 5 },
      totalSeconds: 11.5,
      unaccountedSeconds: 0,
    });
    expect(h.manager.isBuildActive(b.id)).toBe(false);
    // The whole build directory goes (rm -r removes the source file before the directory).
    await eventually(() => h.buildDirs().length === 0);
    expect(eventTypes(h, b)).toEqual([
      'status:queued',
      'status:booting',
      'status:building',
      'phase',
      'log',
      'status:pushing',
      'status:ready',
      'result',
    ]);
  });

  it('fails with the runner code and keeps the log tail', async () => {
    const h = await harness();
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    h.runner.runOf(b.id).finish({
      ok: false,
      code: 'build_failed',
      message: 'RUN exited 1',
      logTail: ['boom'],
      phaseSeconds: {},
    });
    await settle();
    expect(h.store.get(b.id)?.failure).toEqual({
      code: 'build_failed',
      message: 'RUN exited 1',
      logTail: ['boom'],
    });
  });

  it('ends a build whose engine failed after the registry could not serve its base image base_image_unavailable', async () => {
    const h = await harness();
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(b.id);
    // What the engine in the guest does on `FROM node:22-slim`: ask the mirror for it.
    const pull = await h.app.request('/v2/mirror/docker.io/library/node/manifests/22-slim', {
      headers: { authorization: `Bearer ${run.input.registryToken}` },
    });
    expect(pull.status).toBe(404);
    run.finish({
      ok: false,
      code: 'build_failed',
      message: 'buildah build exited with 125',
      logTail: ['Error: initializing source'],
      phaseSeconds: {},
    });
    await settle();
    expect(h.store.get(b.id)?.failure).toEqual({
      code: 'base_image_unavailable',
      message: expect.stringMatching(
        /^Base image docker\.io\/library\/node:22-slim is unavailable \(not configured\): the mirror has no upstreams \(air-gapped\)/,
      ) as unknown,
      logTail: ['Error: initializing source'],
    });
  });

  it('keeps the engine’s code when the registry served every base image', async () => {
    const h = await harness();
    const other = await submit(h, 'acme');
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    // A failed pull under another build's token says nothing about this one.
    const pull = await h.app.request('/v2/mirror/docker.io/library/node/manifests/22-slim', {
      headers: { authorization: `Bearer ${h.runner.runOf(other.id).input.registryToken}` },
    });
    expect(pull.status).toBe(404);
    h.runner.runOf(other.id).finish({
      ok: false,
      code: 'push_failed',
      message: 'push refused',
      logTail: [],
      phaseSeconds: {},
    });
    await h.runner.waitForRuns(2);
    h.runner.runOf(b.id).finish({
      ok: false,
      code: 'build_failed',
      message: 'RUN exited 1',
      logTail: [],
      phaseSeconds: {},
    });
    await settle();
    expect(h.store.get(other.id)?.failure?.code).toBe('push_failed');
    expect(h.store.get(b.id)?.failure?.code).toBe('build_failed');
  });

  it('takes a ready build’s pushed digest and base images from the registry’s record, and says where the agent disagrees', async () => {
    const h = await harness();
    const admin = await h.token('operator', ['registry:admin']);
    const adminAuth = `Basic ${Buffer.from(`operator:${admin}`).toString('base64')}`;
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(b.id);
    const buildAuth = `Bearer ${run.input.registryToken}`;
    const as = (authorization: string) => ({ authorization });
    const push = async (repo: string, tag: string, seed: string, token: string) => {
      const config = testBlob(`{"seed":"${seed}"}`);
      const blob = await h.app.request(`/v2/${repo}/blobs/uploads/?digest=${config.digest}`, {
        method: 'POST',
        body: config.bytes,
        headers: { ...as(token), 'content-type': 'application/octet-stream' },
      });
      expect(blob.status).toBe(201);
      const manifest = imageManifest({ config, layers: [] });
      const res = await h.app.request(`/v2/${repo}/manifests/${tag}`, {
        method: 'PUT',
        body: manifest,
        headers: { ...as(token), 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      });
      expect(res.status).toBe(201);
      return sha256Digest(manifest);
    };
    // An operator seeds a base image; the build pulls it, then pushes its own image.
    const base = await push('library/base', '1', 'base', adminAuth);
    const pulled = await h.app.request('/v2/library/base/manifests/1', { headers: as(buildAuth) });
    expect(pulled.status).toBe(200);
    const pushed = await push(b.repository, b.id, 'image', buildAuth);
    // The agent claims another digest and a base image the registry never served.
    const reported = okOutcome(`${b.repository}:${b.id}`);
    if (!reported.ok) throw new Error('okOutcome is a success');
    reported.provenance.baseImages = { 'evil/base:1': `sha256:${'e'.repeat(64)}` };
    run.finish(reported);
    await settle();
    const result = h.store.get(b.id)?.result;
    expect(result?.imageDigest).toBe(pushed);
    expect(result?.registry).toEqual({
      baseImages: [{ upstream: null, repository: 'library/base', reference: '1', digest: base }],
      pushedDigest: pushed,
      disagreements: [
        `the agent reported pushing sha256:${'a'.repeat(64)}, but the registry accepted ${pushed} as ${b.repository}:${b.id}`,
        `the agent reported base image evil/base:1 at sha256:${'e'.repeat(64)}, which the registry never served to this build`,
      ],
    });
  });

  it('hands the requested secret values to the runner only', async () => {
    const h = await harness();
    h.secrets.put('acme', 'npm', 'hunter2');
    const b = await submit(h, 'acme', { secrets: '["npm"]' });
    await h.runner.waitForRuns(1);
    expect(h.runner.runOf(b.id).input.secrets).toEqual({ npm: 'hunter2' });
    const stored = JSON.stringify(h.db.prepare('SELECT * FROM builds').all());
    expect(stored).not.toContain('hunter2');
  });
});

describe('BuildManager time account', () => {
  it('accounts for every second from the upload to ready: result event and view agree, after-finish steps stored later', async () => {
    const h = await harness();
    const b = (
      await h.manager.accept('acme', async (target) => {
        h.time.advance(800);
        await writeFile(target.partialPath, 'x');
        return { fields: new Map(), secrets: new Map(), source: SOURCE };
      })
    ).build;
    await h.runner.waitForRuns(1);
    const run = h.runner.runOf(b.id);
    h.time.advance(300);
    run.sink.mark('vm_start', h.time.now());
    h.time.advance(50);
    run.sink.mark('boot', h.time.now());
    h.time.advance(4000);
    run.sink.mark('agent', h.time.now());
    // The agent's phase messages as the host sees them arrive.
    for (const [phase, ms] of [
      [null, 500],
      ['extracting', 1500],
      ['building', 3000],
      ['pushing', 1000],
    ] as const) {
      if (phase !== null) run.sink.phase(phase);
      h.time.advance(ms);
    }
    run.sink.mark('teardown', h.time.now());
    h.time.advance(200);
    // The guest reports extracting 1 s, building 3 s, pushing 1 s of the 6 s agent window.
    run.finish(okOutcome(`acme/${b.id}:${b.id}`));
    await settle();
    const phases = {
      upload: 0.8,
      queued: 0,
      token: 0,
      prepare: 0.3,
      vm_start: 0.05,
      boot: 4,
      extracting: 1,
      building: 3,
      pushing: 1,
      agent_other: 1,
      teardown: 0.2,
    };
    const result = h.events.read(b.id, 0, 1000).find((e) => e.data.type === 'result');
    expect(result?.data).toMatchObject({
      timings: { phases, totalSeconds: 11.35, unaccountedSeconds: 0, afterFinish: null },
    });
    await eventually(() => h.store.get(b.id)?.timings.afterFinish != null);
    const res = await h.app.request(`/builds/${b.id}`, {
      headers: { authorization: `Bearer ${await h.token('acme')}` },
    });
    const view = (await res.json()) as { timings: Record<string, unknown> };
    expect(view.timings).toEqual({
      phases,
      total_seconds: 11.35,
      unaccounted_seconds: 0,
      host_observed: { agent_setup: 0.5, extracting: 1.5, building: 3, pushing: 1 },
      guest_reported: ['extracting', 'building', 'pushing'],
      guest_scaled: false,
      after_finish: { source_removal: 0 },
    });
  });

  it('accounts a build cancelled in the queue: its upload and its wait', async () => {
    const h = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' });
    await submit(h, 'acme');
    const waiting = await submit(h, 'acme');
    h.time.advance(2500);
    h.manager.cancel('acme', waiting.id);
    const done = h.store.get(waiting.id)!;
    expect(accountTime(done.timings, done.finishedAt!.getTime())).toMatchObject({
      phases: { upload: 0, queued: 2.5 },
      totalSeconds: 2.5,
      unaccountedSeconds: 0,
    });
  });
});

describe('BuildManager scheduling', () => {
  it('lets the event loop turn between queued runs that end as soon as they start', async () => {
    const runner = new FakeBuildRunner();
    const h = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' }, undefined, runner);
    const builds: Build[] = [];
    for (let i = 0; i < 6; i++) builds.push(await submit(h, 'acme'));
    await runner.waitForRuns(1);
    // From now on every run ends at once, as a runner failing fast does.
    const started = runner.run.bind(runner);
    runner.run = (input, sink, signal) => {
      const outcome = started(input, sink, signal);
      runner.runOf(input.build.id).finish(okOutcome(`${input.build.repository}:x`));
      return outcome;
    };
    runner.runOf(builds[0]!.id).finish(okOutcome(`${builds[0]!.repository}:x`));
    // Had every later run started in the same chain of promise reactions, all six would have
    // started before this callback (and any request waiting on I/O) got its turn.
    const runsAtNextTurn = await new Promise<number>((resolve) => {
      setImmediate(() => {
        resolve(runner.runs.length);
      });
    });
    expect(runsAtNextTurn).toBeLessThan(6);
    await eventually(() => builds.every((b) => statusOf(h, b) === 'ready'));
  });
});

describe('BuildManager accept', () => {
  it('streams into a fresh directory under <data>/builds and removes it when the upload fails', async () => {
    const h = await harness();
    let partial = '';
    await expect(
      h.manager.accept('acme', async (target) => {
        partial = target.partialPath;
        await writeFile(partial, 'half an archive');
        throw new AppError('UPLOAD_ABORTED');
      }),
    ).rejects.toMatchObject({ code: 'UPLOAD_ABORTED' });
    expect(path.dirname(path.dirname(partial))).toBe(path.join(h.dataDir, 'builds'));
    expect(path.basename(partial)).toBe('source.partial');
    expect(h.buildDirs()).toEqual([]);
    expect(h.buildRows()).toBe(0);
  });

  it('checks a field on its own the moment it arrives, secrets included', async () => {
    const h = await harness({ KILN_MAX_CPUS: '4' });
    h.secrets.put('acme', 'npm', 'x');
    const seen: string[] = [];
    await expect(
      h.manager.accept('acme', (target) => {
        const check = (name: 'cpus' | 'secrets', value: string) => {
          try {
            target.checkField(name, value);
            seen.push('ok');
          } catch (err) {
            seen.push((err as AppError).code);
          }
        };
        check('cpus', '4');
        check('cpus', '5');
        check('secrets', '["npm"]');
        check('secrets', '["npm","other"]');
        return Promise.reject(new AppError('UPLOAD_ABORTED'));
      }),
    ).rejects.toMatchObject({ code: 'UPLOAD_ABORTED' });
    expect(seen).toEqual(['ok', 'RESOURCE_OUT_OF_RANGE', 'ok', 'UNKNOWN_SECRET']);
  });

  it('refuses a source whose digest is not source_sha256 and leaves nothing behind', async () => {
    const h = await harness();
    await expect(submit(h, 'acme', { source_sha256: '0'.repeat(64) })).rejects.toMatchObject({
      code: 'SOURCE_SHA256_MISMATCH',
    });
    expect(h.buildDirs()).toEqual([]);
    expect(h.buildRows()).toBe(0);
  });

  it('stores the accepted source as <data>/builds/<id>/source', async () => {
    const h = await harness();
    const b = await submit(h, 'acme', { cpus: '1' });
    expect(b.source.path).toBe(path.join(h.dataDir, 'builds', b.id, 'source'));
    expect(existsSync(b.source.path)).toBe(true);
    expect(h.store.get(b.id)?.request.cpus).toBe(1);
  });
});

describe('BuildManager cancel', () => {
  it('cancels a queued build at once and keeps it out of the runner', async () => {
    const h = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' });
    const first = await submit(h, 'acme');
    const queued = await submit(h, 'acme');
    expect(h.manager.get('acme', queued.id).queuePosition).toBe(1);
    h.manager.cancel('acme', queued.id);
    expect(statusOf(h, queued)).toBe('cancelled');
    expect(h.manager.cancel('acme', queued.id).build.status).toBe('cancelled');
    await h.runner.waitForRuns(1);
    h.runner.runOf(first.id).finish(okOutcome('acme/x:y'));
    await settle();
    expect(h.runner.runs.map((r) => r.input.build.id)).toEqual([first.id]);
  });

  for (const state of ['booting', 'building'] as const) {
    it(`cancels a ${state} build only once the runner resolved (VM gone)`, async () => {
      const h = await harness();
      h.runner.holdAborts = true;
      const b = await submit(h, 'acme');
      await h.runner.waitForRuns(1);
      const run = h.runner.runOf(b.id);
      run.sink.status('booting');
      if (state === 'building') run.sink.status('building');
      h.manager.cancel('acme', b.id);
      expect(run.signal.aborted).toBe(true);
      expect(run.signal.reason).toEqual({ kind: 'cancel' });
      await settle();
      expect(statusOf(h, b)).toBe(state);
      expect(h.manager.isBuildActive(b.id)).toBe(true);
      h.manager.cancel('acme', b.id);
      run.finish({
        ok: false,
        code: 'cancelled',
        message: 'killed',
        logTail: [],
        phaseSeconds: {},
      });
      await settle();
      expect(statusOf(h, b)).toBe('cancelled');
      expect(h.manager.isBuildActive(b.id)).toBe(false);
    });
  }

  it('cancels a build handed out but not yet given to the runner without starting it', async () => {
    const h = await harness();
    const b = await submit(h, 'acme');
    h.manager.cancel('acme', b.id);
    // The build token is signed (real crypto) before the runner would get the build.
    await eventually(() => statusOf(h, b) === 'cancelled');
    expect(h.runner.runs).toHaveLength(0);
  });

  it('answers BUILD_NOT_FOUND to another tenant', async () => {
    const h = await harness();
    const b = await submit(h, 'acme');
    expect(() => h.manager.cancel('other', b.id)).toThrow(
      expect.objectContaining({ code: 'BUILD_NOT_FOUND' }),
    );
  });
});

describe('BuildManager timeouts', () => {
  it('aborts with reason timeout after timeout_seconds from leaving the queue', async () => {
    const h = await harness();
    const b = await submit(h, 'acme', { timeout_seconds: '30' });
    await h.runner.waitForRuns(1);
    h.time.advance(29_999);
    expect(h.runner.runOf(b.id).signal.aborted).toBe(false);
    h.time.advance(1);
    expect(h.runner.runOf(b.id).signal.reason).toEqual({ kind: 'timeout', seconds: 30 });
    await settle();
    expect(h.store.get(b.id)?.failure?.code).toBe('timeout');
  });

  it('fails builds waiting longer than the queue timeout with queue_timeout', async () => {
    const h = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1', KILN_QUEUE_TIMEOUT_SECONDS: '60' });
    await submit(h, 'acme');
    const waiting = await submit(h, 'acme');
    h.time.advance(59_000);
    expect(h.manager.sweepQueueTimeouts()).toBe(0);
    // The daemon's own sweep (every 5 s on the injected scheduler) fails it at 60 s.
    h.time.advance(1_000);
    expect(h.manager.sweepQueueTimeouts()).toBe(0);
    expect(h.store.get(waiting.id)?.failure?.code).toBe('queue_timeout');
    expect(h.manager.queuedCount).toBe(0);
  });
});

describe('BuildManager fairness', () => {
  it('starts builds round-robin across tenants within the global limit', async () => {
    const h = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' });
    const a1 = await submit(h, 'a');
    const a2 = await submit(h, 'a');
    const a3 = await submit(h, 'a');
    const b1 = await submit(h, 'b');
    expect(h.manager.get('a', a3.id).queuePosition).toBe(3);
    expect(h.manager.get('b', b1.id).queuePosition).toBe(1);
    const order: string[] = [];
    for (let i = 0; i < 4; i++) {
      await h.runner.waitForRuns(i + 1);
      const run = h.runner.runs[i]!;
      order.push(run.input.build.id);
      run.finish(okOutcome('x/y:z'));
      await settle();
    }
    expect(order).toEqual([a1.id, b1.id, a2.id, a3.id]);
  });
});

describe('BuildManager restart recovery', () => {
  it('calls recover() first, re-queues queued builds in order and running ones once', async () => {
    const first = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' });
    first.runner.holdAborts = true;
    const running = await submit(first, 'acme');
    const q1 = await submit(first, 'acme');
    const q2 = await submit(first, 'other');
    await first.runner.waitForRuns(1);
    first.runner.runOf(running.id).sink.status('building');
    // The daemon dies: nothing resolves the run; the store is all that is left.
    crash(first);
    const runner = new FakeBuildRunner();
    const second = await createHarness({
      dataDir: first.dataDir,
      env: { KILN_MAX_CONCURRENT_BUILDS: '1' },
      runner,
      start: false,
    });
    open.push(second);
    const started = second.manager.start();
    expect(runner.events).toEqual(['recover']);
    await started;
    // Re-queued, and with the one slot free started again at once (its second attempt).
    expect(second.store.get(running.id)).toMatchObject({ status: 'booting', attempts: 2 });
    const order: string[] = [];
    for (let i = 0; i < 3; i++) {
      await runner.waitForRuns(i + 1);
      const run = runner.runs[i]!;
      order.push(run.input.build.id);
      run.finish(okOutcome('x/y:z'));
      await settle();
    }
    // Acceptance order within each tenant, round-robin between tenants.
    expect(order).toEqual([running.id, q2.id, q1.id]);
    expect(runner.events[0]).toBe('recover');
    expect(second.store.get(running.id)?.attempts).toBe(2);
  });

  it('fails a build interrupted on its second attempt with daemon_restarted', async () => {
    const first = await harness();
    first.runner.holdAborts = true;
    const b = await submit(first, 'acme');
    await first.runner.waitForRuns(1);
    first.runner.runOf(b.id).sink.status('booting');
    const stored = first.store.get(b.id)!;
    stored.attempts = 2;
    first.store.update(stored);
    crash(first);
    const second = await createHarness({ dataDir: first.dataDir });
    open.push(second);
    const after = second.store.get(b.id)!;
    expect(after.status).toBe('failed');
    expect(after.failure?.code).toBe('daemon_restarted');
    expect(second.runner.runs).toHaveLength(0);
  });

  it('removes build directories without a live build at start and keeps those it will run', async () => {
    const first = await harness({ KILN_MAX_CONCURRENT_BUILDS: '1' });
    first.runner.holdAborts = true;
    const running = await submit(first, 'acme');
    const queued = await submit(first, 'acme');
    const cancelled = await submit(first, 'acme');
    first.manager.cancel('acme', cancelled.id);
    await eventually(() => !first.buildDirs().includes(cancelled.id));
    // A removal cut short by the crash, and an upload that was still streaming.
    await mkdir(path.join(first.dataDir, 'builds', cancelled.id));
    await mkdir(path.join(first.dataDir, 'builds', 'b_interruptedupload0000'));
    await writeFile(
      path.join(first.dataDir, 'builds', 'b_interruptedupload0000', 'source.partial'),
      'x',
    );
    crash(first);
    const second = await createHarness({ dataDir: first.dataDir, start: false });
    open.push(second);
    expect(second.buildDirs()).toHaveLength(4);
    await second.manager.start();
    expect(second.buildDirs().sort()).toEqual([running.id, queued.id].sort());
  });

  it('leaves builds aborted by shutdown non-terminal so the next start re-runs them', async () => {
    const h = await harness();
    const b = await submit(h, 'acme');
    await h.runner.waitForRuns(1);
    h.runner.runOf(b.id).sink.status('building');
    await h.manager.close();
    expect(h.runner.runOf(b.id).signal.reason).toEqual({ kind: 'shutdown' });
    expect(statusOf(h, b)).toBe('building');
  });
});
