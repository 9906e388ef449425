import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentChannel } from '../../agent/channel/agent-channel.js';
import type {
  BuildEngine,
  EngineHooks,
  EngineRequest,
  EngineResult,
} from '../../agent/engines/build-engine.js';
import { serveBuild, type ServeBuildOutcome } from '../../agent/serve-build.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import { MAX_MESSAGE_BYTES, type AgentMessage } from '../../common/protocol/agent-messages.js';
import type { BuildJob } from '../../common/protocol/build-job.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { gzip, tarArchive, tarEntry } from '../helpers/tar-builder.js';

/** Stand-in for Buildah/BuildKit: the session logic is what is under test here. */
class StandInEngine implements BuildEngine {
  readonly name = 'buildah' as const;
  requests: EngineRequest[] = [];
  secretsSeen: string[] = [];
  constructor(private readonly behaviour: 'ok' | 'fail' | 'hang') {}
  version(): Promise<string> {
    return Promise.resolve('0.0-stand-in');
  }
  async build(request: EngineRequest, hooks: EngineHooks): Promise<EngineResult> {
    this.requests.push(request);
    this.secretsSeen = Object.keys(request.credentials.secretFiles);
    await hooks.phase('building');
    await hooks.log('stdout', 'STEP 1/1: FROM busybox\n');
    if (this.behaviour === 'fail') throw new BuildFailure('build_failed', 'RUN exited with 3');
    if (this.behaviour === 'hang') {
      await new Promise<void>((resolve) => {
        hooks.signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
      });
      throw new BuildFailure('build_failed', 'killed');
    }
    await hooks.phase('pushing');
    return {
      digest: `sha256:${'d'.repeat(64)}`,
      imageRef: request.imageRefs[0]!,
      baseImages: { busybox: `sha256:${'b'.repeat(64)}` },
    };
  }
}

interface Harness {
  host: PassThrough;
  received: AgentMessage[];
  outcome: Promise<ServeBuildOutcome>;
  engine: StandInEngine;
  /** Resolves once a message of `type` has arrived. */
  waitFor(type: AgentMessage['type']): Promise<AgentMessage>;
  /** Waits for hello, sends `start` and resolves with the session's outcome. */
  run(): Promise<ServeBuildOutcome>;
}

let dir: string;
let job: BuildJob;
const clock = new ManualClock(1_800_000_000_000);

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'kiln-session-'));
  const archive = gzip(
    tarArchive(
      tarEntry({ name: 'Dockerfile', content: 'FROM busybox\n' }),
      tarEntry({ name: 'package-lock.json', content: '{}' }),
    ),
  );
  await writeFile(path.join(dir, 'source.img'), archive);
  job = {
    version: 1,
    buildId: 'b_test',
    tenant: 'acme',
    source: {
      sizeBytes: archive.length,
      sha256: createHash('sha256').update(archive).digest('hex'),
      compression: 'gzip',
      maxUnpackedBytes: 1 << 20,
      maxEntries: 100,
      maxPathBytes: 255,
    },
    contextDir: '',
    dockerfilePath: 'Dockerfile',
    dockerfile: null,
    buildArgs: {},
    secretIds: ['npmrc'],
    registry: {
      host: '10.0.2.100:5000',
      insecure: true,
      repository: 'acme/web',
      tags: ['b_test', 'latest'],
      cacheRepository: null,
      mirror: { namespace: 'mirror', upstreams: ['docker.io'] },
    },
    engine: 'auto',
    buildkitFrontend: null,
    layerCompression: {
      buildah: { format: 'gzip', level: null },
      buildkit: { format: 'gzip', level: null },
    },
    networkMode: 'isolated',
    egressProxy: null,
    resources: { memoryMb: 1024, cpus: 1 },
    cache: null,
  };
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function start(
  behaviour: 'ok' | 'fail' | 'hang' = 'ok',
  cache: { dir: string; release: () => Promise<boolean> } | null = null,
): Harness {
  const host = new PassThrough();
  const output = new PassThrough();
  const received: AgentMessage[] = [];
  const waiters: { type: string; resolve: (m: AgentMessage) => void }[] = [];
  let buf = '';
  output.on('data', (chunk: Buffer) => {
    buf += chunk.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const m = JSON.parse(buf.slice(0, i)) as AgentMessage;
      buf = buf.slice(i + 1);
      received.push(m);
      for (const w of waiters.filter((x) => x.type === m.type)) w.resolve(m);
    }
  });
  const channel: AgentChannel = { input: host, output, close: () => Promise.resolve() };
  const engine = new StandInEngine(behaviour);
  const outcome = serveBuild({
    channel,
    clock,
    agentVersion: '9.9.9',
    engines: [engine],
    loadJob: () => Promise.resolve(job),
    environment: {
      sourceDevice: path.join(dir, 'source.img'),
      scratchDir: path.join(dir, 'scratch'),
      memoryDir: path.join(dir, 'run'),
      cacheDir: cache?.dir ?? null,
    },
    releaseCache: cache?.release ?? null,
    diag: () => undefined,
  });
  const waitFor: Harness['waitFor'] = (type) => {
    const hit = received.find((m) => m.type === type);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => waiters.push({ type, resolve }));
  };
  return {
    host,
    received,
    engine,
    outcome,
    waitFor,
    run: async () => {
      await waitFor('hello');
      host.write(startLine);
      return outcome;
    },
  };
}

const startLine = `${JSON.stringify({ type: 'start', registryToken: 'tok', secrets: { npmrc: 'x' } })}\n`;

/** A build on a cache disk: the harness, the disk's directory and each release the agent made. */
async function startOnCacheDisk(
  behaviour: 'ok' | 'fail',
): Promise<{ h: Harness; cacheDir: string; releases: string[] }> {
  job = { ...job, cache: { gcThresholdPercent: 80 } };
  const cacheDir = path.join(dir, 'cache');
  await mkdir(cacheDir);
  const releases: string[] = [];
  const h = start(behaviour, {
    dir: cacheDir,
    release: () => {
      releases.push('released');
      return Promise.resolve(true);
    },
  });
  return { h, cacheDir, releases };
}

describe('serveBuild', () => {
  it('says hello first, then builds on start and ends with an ok result carrying provenance', async () => {
    const h = start();
    expect(await h.waitFor('hello')).toEqual({
      type: 'hello',
      protocol: 1,
      agentVersion: '9.9.9',
      engines: ['buildah'],
    });
    h.host.write(startLine);
    expect(await h.outcome).toBe('result_sent');
    expect(h.received[0]?.type).toBe('hello');
    expect(h.received.flatMap((m) => (m.type === 'phase' ? [m.phase] : []))).toEqual([
      'extracting',
      'engine_start',
      'building',
      'pushing',
    ]);
    const result = h.received.at(-1);
    expect(result).toMatchObject({
      type: 'result',
      ok: true,
      imageDigest: `sha256:${'d'.repeat(64)}`,
      imageRef: '10.0.2.100:5000/acme/web:b_test',
      provenance: {
        sourceSha256: job.source.sha256,
        lockfiles: { 'package-lock.json': createHash('sha256').update('{}').digest('hex') },
        baseImages: { busybox: `sha256:${'b'.repeat(64)}` },
        engine: { name: 'buildah', version: '0.0-stand-in' },
      },
    });
    expect(h.engine.secretsSeen).toEqual(['npmrc']);
    expect(h.engine.requests[0]?.imageRefs).toEqual([
      '10.0.2.100:5000/acme/web:b_test',
      '10.0.2.100:5000/acme/web:latest',
    ]);
  });

  it('keeps the engine state on the cache disk and reports it released after a success', async () => {
    const { h, cacheDir, releases } = await startOnCacheDisk('ok');
    expect(await h.run()).toBe('result_sent');
    expect(h.engine.requests[0]?.workDir).toBe(path.join(cacheDir, 'engine'));
    expect(releases).toEqual(['released']);
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: true, cacheSynced: true });
    // The sync is a phase of its own, told as it starts and timed in the result.
    expect(h.received.flatMap((m) => (m.type === 'phase' ? [m.phase] : [])).at(-1)).toBe(
      'syncing_cache',
    );
    expect(h.received.at(-1)).toHaveProperty('phaseSeconds.syncing_cache');
    const logs = h.received.flatMap((m) => (m.type === 'log' ? [m.data] : []));
    expect(logs.some((l) => /cache disk \d+% full/.test(l))).toBe(true);
  });

  it('does not release the cache disk after a failed build (the host discards the fork)', async () => {
    const { h, releases } = await startOnCacheDisk('fail');
    expect(await h.run()).toBe('result_sent');
    expect(releases).toEqual([]);
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: false });
    expect(h.received.at(-1)).not.toHaveProperty('cacheSynced');
  });

  it("passes an isolated build's own build args alone, with no proxy variable", async () => {
    job = { ...job, buildArgs: { VERSION: '1' } };
    const h = start();
    expect(await h.run()).toBe('result_sent');
    expect(h.engine.requests[0]?.buildArgs).toEqual({ VERSION: '1' });
  });

  it("gives an egress build's steps the proxy as predefined args, upper and lower case, over the client's", async () => {
    job = {
      ...job,
      networkMode: 'egress',
      buildArgs: { VERSION: '1', HTTP_PROXY: 'http://elsewhere:1' },
      egressProxy: { url: 'http://10.0.2.100:3128', noProxy: '10.0.2.100' },
    };
    const h = start();
    expect(await h.run()).toBe('result_sent');
    expect(h.engine.requests[0]?.buildArgs).toEqual({
      VERSION: '1',
      HTTP_PROXY: 'http://10.0.2.100:3128',
      http_proxy: 'http://10.0.2.100:3128',
      HTTPS_PROXY: 'http://10.0.2.100:3128',
      https_proxy: 'http://10.0.2.100:3128',
      NO_PROXY: '10.0.2.100',
      no_proxy: '10.0.2.100',
    });
  });

  it('skips garbage, oversized and invalid host lines, reports them, and still builds', async () => {
    const h = start();
    await h.waitFor('hello');
    h.host.write('this is not json\n');
    h.host.write(`${'x'.repeat(MAX_MESSAGE_BYTES + 10)}\n`);
    h.host.write('{"type":"start"}\n');
    h.host.write('[1,2,3]\n');
    h.host.write(startLine);
    expect(await h.outcome).toBe('result_sent');
    const logs = h.received.flatMap((m) => (m.type === 'log' ? [m.data] : []));
    expect(logs.filter((l) => l.startsWith('agent: skipped a host message'))).toHaveLength(4);
    expect(logs.some((l) => l.includes('oversized'))).toBe(true);
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: true });
  });

  it('ends without a result when the host goes away before start (early EOF)', async () => {
    const h = start();
    await h.waitFor('hello');
    h.host.end('{"type":"sta');
    expect(await h.outcome).toBe('host_gone');
    expect(h.received.map((m) => m.type)).toEqual(['hello']);
  });

  it('answers a cancel before start with a cancelled result', async () => {
    const h = start();
    await h.waitFor('hello');
    h.host.write('{"type":"cancel","reason":"user"}\n');
    expect(await h.outcome).toBe('cancelled_before_start');
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: false, code: 'cancelled' });
  });

  it('stops the engine on cancel during the build and reports cancelled', async () => {
    const h = start('hang');
    await h.waitFor('hello');
    h.host.write(startLine);
    await h.waitFor('log');
    await new Promise<void>((resolve) => {
      const check = (): void => {
        if (h.received.some((m) => m.type === 'phase' && m.phase === 'building')) resolve();
        else setImmediate(check);
      };
      check();
    });
    h.host.write('{"type":"cancel","reason":"user"}\n');
    expect(await h.outcome).toBe('result_sent');
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: false, code: 'cancelled' });
  });

  it('reports an engine failure with its code and the last log lines', async () => {
    const h = start('fail');
    expect(await h.run()).toBe('result_sent');
    const result = h.received.at(-1);
    expect(result).toMatchObject({
      type: 'result',
      ok: false,
      code: 'build_failed',
      message: 'RUN exited with 3',
    });
    expect(result?.type === 'result' && !result.ok && result.logTail).toContain(
      'STEP 1/1: FROM busybox',
    );
  });

  it('reports a source that fails its sha256 as invalid_source', async () => {
    job = { ...job, source: { ...job.source, sha256: 'f'.repeat(64) } };
    const h = start();
    await h.run();
    expect(h.received.at(-1)).toMatchObject({ type: 'result', ok: false, code: 'invalid_source' });
    expect(h.engine.requests).toHaveLength(0);
  });
});
