import { existsSync } from 'node:fs';
import { appendFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { list as listTar } from 'tar';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { makeTestBuild } from './vm-test-build.js';
import type { AgentMessage, HostMessage } from '../../common/protocol/agent-messages.js';
import type { BuildJob } from '../../common/protocol/build-job.js';
import { LineFramer } from '../../common/protocol/line-framer.js';
import type { AbortReason, BuildRunSink, RunOutcome } from '../../src/builds/build-runner.js';
import type { Build, BuildRequest } from '../../src/builds/build.js';
import {
  resolveLayerCompression,
  type LayerCompressionConfig,
} from '../../src/config/layer-compression-config.js';
import { readProcessStartTicks } from '../../src/vm/process-identity.js';
import { VmBuildRunner } from '../../src/vm/vm-build-runner.js';
import { VmLedger, type VmLedgerEntry } from '../../src/vm/vm-ledger.js';
import { spawnVmmProcess, type VmmProcess } from '../../src/vm/vmm-process.js';
import type { VmHandle, Vmm, VmSpec } from '../../src/vm/vmm.js';
import { defaultEgressConfig } from '../helpers/default-egress-config.js';
import { LoopbackOnlyConnector } from '../helpers/loopback-only-connector.js';
import { ManualClock } from '../helpers/manual-clock.js';

const logger = pino({ level: 'silent' });

/** The guest end of the agent channel, as a stand-in agent script sees it. */
interface StandInGuest {
  spec: VmSpec;
  job: BuildJob;
  send(message: AgentMessage | Record<string, unknown>): void;
  raw(text: string): void;
  /** Next host message. */
  receive(): Promise<HostMessage>;
  end(): void;
  console(text: string): Promise<void>;
}

/**
 * Stand-in for a microVM: the VMM process is a real `sleep` (so kill, pid records and reaping
 * are real) and the agent channel is a real Unix socket whose far end is driven by the test's
 * script — the boundary that cannot run here is a guest agent misbehaving on purpose.
 */
class StandInGuestVmm implements Vmm {
  readonly name = 'qemu' as const;
  readonly accel = 'stand-in';
  readonly guestRegistryAddress = '10.0.2.100:5000';
  readonly guestEgressProxyAddress = '10.0.2.100:3128';
  readonly processes: VmmProcess[] = [];
  specs: VmSpec[] = [];

  constructor(private readonly script: (guest: StandInGuest) => Promise<void> | void) {}

  async start(spec: VmSpec): Promise<VmHandle> {
    this.specs.push(spec);
    const proc = await spawnVmmProcess('sleep', ['300'], { stdio: ['ignore', 'ignore', 'ignore'] });
    this.processes.push(proc);
    const socketPath = path.join(spec.runDir, 'agent.sock');
    const server = net.createServer();
    const hostSide = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const guestSide = net.connect(socketPath);
    const host = await hostSide;
    server.close();
    const job = await readJob(spec);
    const framer = new LineFramer();
    const inbox: HostMessage[] = [];
    const waiters: ((m: HostMessage) => void)[] = [];
    guestSide.on('data', (chunk: Buffer) => {
      for (const f of framer.push(chunk)) {
        if (f.kind !== 'message') continue;
        const m = f.value as HostMessage;
        const w = waiters.shift();
        if (w) w(m);
        else inbox.push(m);
      }
    });
    guestSide.on('error', () => undefined);
    void Promise.resolve(
      this.script({
        spec,
        job,
        send: (m) => guestSide.write(`${JSON.stringify(m)}\n`),
        raw: (t) => guestSide.write(t),
        receive: () =>
          new Promise((resolve) => {
            const m = inbox.shift();
            if (m) resolve(m);
            else waiters.push(resolve);
          }),
        end: () => guestSide.end(),
        console: (t) => appendFile(spec.consoleLogPath, t),
      }),
    ).catch(() => undefined);
    void proc.exited.then(() => guestSide.destroy());
    return {
      id: spec.id,
      pid: proc.pid,
      executable: proc.executable,
      exited: proc.exited,
      channel: () => Promise.resolve(host as Duplex),
      shutdown: () => proc.kill(),
      kill: () => proc.kill(),
    };
  }
}

async function readJob(spec: VmSpec): Promise<BuildJob> {
  const config = spec.disks.find((d) => d.serial === 'kiln-config');
  let body = '';
  await listTar({
    file: config!.path,
    onReadEntry: (e) => e.on('data', (d: Buffer) => (body += d.toString())),
  });
  return JSON.parse(body) as BuildJob;
}

class RecordingSink implements BuildRunSink {
  statuses: string[] = [];
  phases: string[] = [];
  logs: string[] = [];
  marks: { phase: string; at: number }[] = [];
  constructor(private readonly onPhase: (phase: string) => void = () => undefined) {}
  status(s: 'booting' | 'building' | 'pushing') {
    this.statuses.push(s);
  }
  phase(p: string) {
    this.phases.push(p);
    this.onPhase(p);
  }
  log(stream: string, data: string) {
    this.logs.push(`${stream}:${data}`);
  }
  mark(phase: string, at: Date) {
    this.marks.push({ phase, at: at.getTime() });
  }
}

const hello = {
  type: 'hello',
  protocol: 1,
  agentVersion: 'stand-in',
  engines: ['buildah'],
} as const;
const provenance = {
  sourceSha256: 'a'.repeat(64),
  treeSha256: 'b'.repeat(64),
  lockfiles: {},
  baseImages: {},
  engine: { name: 'buildah', version: '1.28' },
};
const DIGEST = `sha256:${'c'.repeat(64)}`;

/** The agent's result for a pushed image. */
function okResult(phaseSeconds: Record<string, number> = {}) {
  return { type: 'result', ok: true, imageDigest: DIGEST, imageRef: 'x', phaseSeconds, provenance };
}

describe('VmBuildRunner with a stand-in guest', () => {
  let dir: string;
  let time: ManualClock;
  let build: Build;
  let runners: VmBuildRunner[];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-runner-'));
    time = new ManualClock(1_700_000_000_000);
    runners = [];
    const image = path.join(dir, 'image');
    await rm(image, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(image));
    for (const f of ['vmlinuz', 'initramfs.img', 'rootfs.img'])
      await writeFile(path.join(image, f), 'x');
    const source = path.join(dir, 'source.tar.gz');
    await writeFile(source, Buffer.alloc(700, 1));
    build = makeTestBuild({ source: { path: source, sizeBytes: 700 } });
  });

  afterEach(async () => {
    for (const r of runners) await r.close();
    await rm(dir, { recursive: true, force: true });
  });

  function runner(
    vmm: Vmm,
    bootTimeoutSeconds = 5,
    layerCompression?: LayerCompressionConfig,
  ): VmBuildRunner {
    const r = new VmBuildRunner({
      vmm,
      ledger: new VmLedger(path.join(dir, 'vm-ledger')),
      clock: time,
      scheduler: time,
      logger,
      runRoot: path.join(dir, 'vms'),
      imageDir: path.join(dir, 'image'),
      scratchBytes: 1024 ** 3,
      bootTimeoutSeconds,
      limits: { maxUnpackedBytes: 5000, maxEntries: 10, maxPathBytes: 255 },
      mirrorUpstreams: [],
      registryTarget: () => ({ host: '127.0.0.1', port: 5555 }),
      egress: defaultEgressConfig(),
      ...(layerCompression ? { layerCompression } : {}),
    });
    runners.push(r);
    return r;
  }

  /** Runs the test's build with a plain token and no secrets, the cases that look at neither. */
  function runOnce(
    vmm: Vmm,
    sink: BuildRunSink = new RecordingSink(),
    signal: AbortSignal = new AbortController().signal,
  ): Promise<RunOutcome> {
    return runner(vmm).run({ build, registryToken: 't', secrets: {} }, sink, signal);
  }

  async function expectNothingLeft(vmm: StandInGuestVmm): Promise<void> {
    for (const p of vmm.processes) {
      expect(await readProcessStartTicks(p.pid)).toBeNull();
    }
    expect(existsSync(path.join(dir, 'vms', build.id))).toBe(false);
    expect(await readdir(path.join(dir, 'vm-ledger'))).toEqual([]);
  }

  it('runs a build: hello, start with token and secrets, phases and logs relayed, result mapped', async () => {
    let start: HostMessage | undefined;
    let job: BuildJob | undefined;
    let ledgerDuringRun: VmLedgerEntry[] = [];
    const vmm = new StandInGuestVmm(async (g) => {
      job = g.job;
      time.advance(3500);
      g.send(hello);
      start = await g.receive();
      ledgerDuringRun = (await new VmLedger(path.join(dir, 'vm-ledger')).list()).entries;
      g.send({ type: 'phase', phase: 'extracting', at: time.now().getTime() });
      g.send({ type: 'log', stream: 'stdout', data: 'STEP 1/2\n', at: time.now().getTime() });
      g.send({ type: 'phase', phase: 'building', at: time.now().getTime() });
      g.send({ type: 'phase', phase: 'pushing', at: time.now().getTime() });
      g.send(okResult({ building: 4 }));
    });
    const sink = new RecordingSink();

    const outcome = await runner(vmm).run(
      { build, registryToken: 'tok-123', secrets: { npm: 's3cret' } },
      sink,
      new AbortController().signal,
    );

    expect(outcome).toMatchObject({
      ok: true,
      imageDigest: DIGEST,
      pushedRef: `acme/${build.id}:${build.id}`,
      phaseSeconds: { building: 4 },
      provenance,
    });
    expect(start).toEqual({ type: 'start', registryToken: 'tok-123', secrets: { npm: 's3cret' } });
    expect(JSON.stringify(job)).not.toContain('tok-123');
    expect(JSON.stringify(job)).not.toContain('s3cret');
    expect(job?.registry.repository).toBe(`acme/${build.id}`);
    // The run dir and the VMM process were in the crash ledger while the VM ran.
    const proc = vmm.processes[0]!;
    expect(ledgerDuringRun).toEqual([
      {
        vmId: build.id,
        runDir: path.join(dir, 'vms', build.id),
        process: {
          vmId: build.id,
          pid: proc.pid,
          startTicks: expect.any(Number) as number,
          executable: 'sleep',
        },
      },
    ]);
    expect(sink.statuses).toEqual(['booting', 'building', 'pushing']);
    expect(sink.phases).toEqual(['extracting', 'building', 'pushing']);
    expect(sink.logs).toEqual(['stdout:STEP 1/2\n']);
    // VM start, process up, hello 3.5 s later, the result: the host's own marks of the run.
    expect(sink.marks.map((m) => m.phase)).toEqual(['vm_start', 'boot', 'agent', 'teardown']);
    expect(sink.marks[2]!.at - sink.marks[0]!.at).toBe(3500);
    expect(vmm.specs[0]?.disks.map((d) => [d.serial, d.readOnly])).toEqual([
      ['kiln-root', true],
      ['kiln-source', true],
      ['kiln-config', true],
      ['kiln-scratch', false],
    ]);
    expect(vmm.specs[0]?.network).toEqual({
      mode: 'isolated',
      registryTarget: { host: '127.0.0.1', port: 5555 },
    });
    await expectNothingLeft(vmm);
  });

  it('logs the host’s reason when the engine that runs pushes other than configured (none under Buildah)', async () => {
    const jobs: BuildJob[] = [];
    const none = resolveLayerCompression({ format: 'none', level: null });
    const logsOf = async (engines: string[], request: Partial<BuildRequest> = {}) => {
      const vmm = new StandInGuestVmm(async (g) => {
        jobs.push(g.job);
        g.send({ ...hello, engines });
        await g.receive();
        g.send(okResult());
      });
      const sink = new RecordingSink();
      const outcome = await runner(vmm, 5, none).run(
        {
          build: { ...build, request: { ...build.request, ...request } },
          registryToken: 't',
          secrets: {},
        },
        sink,
        new AbortController().signal,
      );
      expect(outcome.ok).toBe(true);
      return sink.logs;
    };

    expect(await logsOf(['buildah'])).toEqual([
      expect.stringMatching(/^system:\[kiln\] KILN_LAYER_COMPRESSION=none: .*gzip level 1\n$/),
    ]);
    expect(await logsOf(['buildkit', 'buildah'])).toEqual([]);
    expect(await logsOf(['buildkit', 'buildah'], { engine: 'buildah' })).toHaveLength(1);
    expect(jobs[0]?.layerCompression).toEqual({
      buildah: { format: 'gzip', level: 1 },
      buildkit: { format: 'none', level: null },
    });
  });

  it('runs an egress build with its own proxy: forwarded from the guest, refusals as network logs and in the outcome, closed with the VM', async () => {
    const source = build.source;
    build = makeTestBuild({
      source,
      request: { networkMode: 'egress', allowedHosts: ['private.test'] },
    });
    const guard = new LoopbackOnlyConnector();
    let answer = '';
    let job: BuildJob | undefined;
    const vmm = new StandInGuestVmm(async (g) => {
      job = g.job;
      g.send(hello);
      await g.receive();
      if (g.spec.network.mode !== 'egress') throw new Error('no egress socket');
      // What the guest's forward delivers: one CONNECT through the build's proxy socket.
      const socket = net.connect(g.spec.network.egressProxySocket);
      socket.on('data', (chunk: Buffer) => (answer += chunk.toString()));
      socket.write('CONNECT private.test:443 HTTP/1.1\r\nHost: private.test:443\r\n\r\n');
      await new Promise<void>((resolve) =>
        socket.on('close', () => {
          resolve();
        }),
      );
      g.send(okResult());
    });
    const r = new VmBuildRunner({
      vmm,
      ledger: new VmLedger(path.join(dir, 'vm-ledger')),
      clock: time,
      scheduler: time,
      logger: pino({ level: 'silent' }),
      runRoot: path.join(dir, 'vms'),
      imageDir: path.join(dir, 'image'),
      scratchBytes: 1024 ** 3,
      bootTimeoutSeconds: 5,
      limits: { maxUnpackedBytes: 5000, maxEntries: 10, maxPathBytes: 255 },
      registryTarget: () => ({ host: '127.0.0.1', port: 5555 }),
      egress: defaultEgressConfig(),
      mirrorUpstreams: [],
      egressHooks: {
        resolve: () => Promise.resolve([{ address: '10.0.0.5', family: 4 }]),
        connect: guard.connect,
        hostAddresses: [],
      },
    });
    runners.push(r);
    const sink = new RecordingSink();

    const outcome = await r.run(
      { build, registryToken: 't', secrets: {} },
      sink,
      new AbortController().signal,
    );

    expect(answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(sink.logs).toEqual(['network:denied private.test:443 (10.0.0.5): private address\n']);
    expect(outcome).toMatchObject({
      ok: true,
      egress: {
        hosts: [],
        deniedTotal: 1,
        denied: [
          {
            host: 'private.test',
            port: 443,
            address: '10.0.0.5',
            reason: 'private',
            message: 'denied private.test:443 (10.0.0.5): private address',
          },
        ],
      },
    });
    expect(vmm.specs[0]?.network).toEqual({
      mode: 'egress',
      registryTarget: { host: '127.0.0.1', port: 5555 },
      egressProxySocket: path.join(dir, 'vms', build.id, 'egress.sock'),
    });
    expect(job?.egressProxy).toEqual({ url: 'http://10.0.2.100:3128', noProxy: '10.0.2.100' });
    expect(guard.calls).toEqual([]);
    await expectNothingLeft(vmm);
  });

  it('gives an isolated build no proxy and no egress in its outcome', async () => {
    let job: BuildJob | undefined;
    const vmm = new StandInGuestVmm(async (g) => {
      job = g.job;
      g.send(hello);
      await g.receive();
      g.send(okResult());
    });
    const outcome = await runOnce(vmm);
    expect(outcome.ok).toBe(true);
    expect(outcome).not.toHaveProperty('egress');
    expect(job?.egressProxy).toBeNull();
  });

  it('passes a failed result through with its code and log tail', async () => {
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      g.send({ type: 'phase', phase: 'building', at: time.now().getTime() });
      g.send({
        type: 'result',
        ok: false,
        code: 'build_failed',
        message: 'RUN exited 3',
        logTail: ['boom'],
        phaseSeconds: {},
      });
    });
    const outcome = await runOnce(vmm);
    expect(outcome).toMatchObject({
      ok: false,
      code: 'build_failed',
      message: 'RUN exited 3',
      logTail: ['boom'],
    });
    await expectNothingLeft(vmm);
  });

  it('fails agent_protocol_error when the agent speaks another protocol version', async () => {
    const vmm = new StandInGuestVmm((g) => {
      g.send({ ...hello, protocol: 99 });
    });
    const outcome = await runOnce(vmm);
    expect(outcome).toMatchObject({
      ok: false,
      code: 'agent_protocol_error',
      message: expect.stringMatching(/protocol 99/) as string,
    });
    await expectNothingLeft(vmm);
  });

  it('fails agent_protocol_error on a garbage line', async () => {
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      g.raw('this is not json\n');
    });
    const outcome = await runOnce(vmm);
    expect(outcome).toMatchObject({ ok: false, code: 'agent_protocol_error' });
    await expectNothingLeft(vmm);
  });

  it('fails agent_lost when the channel ends after hello without a result, keeping the log tail', async () => {
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      g.send({
        type: 'log',
        stream: 'stderr',
        data: 'line one\nline two\n',
        at: time.now().getTime(),
      });
      g.end();
    });
    const outcome = await runOnce(vmm);
    expect(outcome).toMatchObject({
      ok: false,
      code: 'agent_lost',
      logTail: ['line one', 'line two'],
    });
    await expectNothingLeft(vmm);
  });

  it('fails vm_boot_failed with the console tail when the agent never says hello in time', async () => {
    let consoleWritten!: () => void;
    const written = new Promise<void>((resolve) => (consoleWritten = resolve));
    const vmm = new StandInGuestVmm(async (g) => {
      await g.console('[    0.1] Linux version 6.1\nkiln-init: no agent channel\n');
      consoleWritten();
    });
    const sink = new RecordingSink();
    const pending = runOnce(vmm, sink);
    // The boot deadline and the backstop are armed once the VM runs.
    await Promise.all([written, time.whenArmed(2)]);
    time.advance(4999);
    expect(sink.logs).toEqual([]);
    time.advance(1);
    const outcome = await pending;
    expect(outcome).toMatchObject({ ok: false, code: 'vm_boot_failed' });
    expect(sink.marks.map((m) => m.phase)).toEqual(['vm_start', 'boot', 'teardown']);
    expect(outcome.ok || outcome.logTail).toEqual(
      expect.arrayContaining(['kiln-init: no agent channel']),
    );
    expect(sink.logs.join('')).toContain('kiln-init: no agent channel');
    await expectNothingLeft(vmm);
  });

  it('on cancel sends cancel to the agent and kills the VM at once, reporting the abort', async () => {
    const controller = new AbortController();
    let received: HostMessage | undefined;
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      g.send({ type: 'phase', phase: 'building', at: time.now().getTime() });
      received = await g.receive();
    });
    // Cancelled the moment the host relays the phase. Time never moves in this test: the run
    // ends without waiting for any timer.
    const sink = new RecordingSink(() => {
      controller.abort({ kind: 'cancel' } satisfies AbortReason);
    });
    const outcome: RunOutcome = await runOnce(vmm, sink, controller.signal);
    expect(outcome).toEqual({
      ok: false,
      aborted: true,
      logTail: [],
      phaseSeconds: { building: 0 },
    });
    expect(received).toEqual({ type: 'cancel', reason: 'cancel' });
    expect((await vmm.processes[0]!.exited).signal).toBe('SIGKILL');
    await expectNothingLeft(vmm);
  });

  it('reports a timeout abort as an abort with the log tail, naming no failure itself', async () => {
    const controller = new AbortController();
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      g.send({ type: 'log', stream: 'stdout', data: 'step 1\n', at: time.now().getTime() });
      g.send({ type: 'phase', phase: 'building', at: time.now().getTime() });
    });
    // Aborted the moment the host relays the phase, so the log line came first.
    const sink = new RecordingSink(() => {
      controller.abort({ kind: 'timeout', seconds: 60 } satisfies AbortReason);
    });
    const outcome = await runOnce(vmm, sink, controller.signal);
    expect(outcome).toMatchObject({ ok: false, aborted: true, logTail: ['step 1'] });
    expect(outcome).not.toHaveProperty('code');
    await expectNothingLeft(vmm);
  });

  it('does not start a VM for a build aborted before it ran', async () => {
    const controller = new AbortController();
    controller.abort({ kind: 'cancel' } satisfies AbortReason);
    const vmm = new StandInGuestVmm(() => undefined);
    const outcome = await runOnce(vmm, new RecordingSink(), controller.signal);
    expect(outcome).toMatchObject({ ok: false, aborted: true });
    expect(vmm.processes).toEqual([]);
  });

  it('fails vm_boot_failed without starting anything when the guest image is missing', async () => {
    await rm(path.join(dir, 'image', 'rootfs.img'));
    const vmm = new StandInGuestVmm(() => undefined);
    const outcome = await runOnce(vmm);
    expect(outcome).toMatchObject({
      ok: false,
      code: 'vm_boot_failed',
      message: expect.stringContaining('rootfs.img') as string,
    });
    expect(vmm.processes).toEqual([]);
  });

  it('close() aborts running builds and waits for their cleanup', async () => {
    let helloSent!: () => void;
    const ready = new Promise<void>((r) => (helloSent = r));
    const vmm = new StandInGuestVmm(async (g) => {
      g.send(hello);
      await g.receive();
      helloSent();
    });
    const r = runner(vmm);
    const pending = r.run(
      { build, registryToken: 't', secrets: {} },
      new RecordingSink(),
      new AbortController().signal,
    );
    await ready;
    await r.close();
    expect(await pending).toMatchObject({ ok: false, aborted: true });
    await expectNothingLeft(vmm);
  });
});
