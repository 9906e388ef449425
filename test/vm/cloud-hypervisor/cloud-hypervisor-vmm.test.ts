import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { AgentMessage } from '../../../common/protocol/agent-messages.js';
import { DISK_SERIALS } from '../../../common/protocol/guest-boot.js';
import { LineFramer } from '../../../common/protocol/line-framer.js';
import { parseEgressConfig } from '../../../src/config/egress-config.js';
import { createBuildEgressProxy } from '../../../src/egress/create-build-egress-proxy.js';
import { buildCloudHypervisorVmConfig } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-vm-config.js';
import type { CloudHypervisorVm } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-vm.js';
import { CloudHypervisorVmm } from '../../../src/vm/cloud-hypervisor/cloud-hypervisor-vmm.js';
import { isVmError } from '../../../src/vm/vm-error.js';
import type { VmHandle, VmSpec } from '../../../src/vm/vmm.js';
import {
  createCloudHypervisorStandIn,
  type CloudHypervisorStandInScenario,
} from '../../helpers/cloud-hypervisor-stand-in.js';
import { LoopbackOnlyConnector } from '../../helpers/loopback-only-connector.js';
import { ManualClock } from '../../helpers/manual-clock.js';

const logger = pino({ level: 'silent' });

/** Reads agent messages off the channel, one at a time, as they arrive. */
class MessageReader {
  private readonly queue: AgentMessage[] = [];
  private waiter: (() => void) | undefined;
  private readonly framer = new LineFramer();
  constructor(stream: Duplex) {
    stream.on('data', (chunk: Buffer) => {
      for (const event of this.framer.push(chunk)) {
        if (event.kind === 'message') this.queue.push(event.value as AgentMessage);
      }
      this.waiter?.();
    });
  }
  async next(): Promise<AgentMessage> {
    while (this.queue.length === 0) {
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
    return this.queue.shift()!;
  }
  /** The next `log` message whose data starts with `prefix`. */
  async log(prefix: string): Promise<string> {
    for (;;) {
      const message = await this.next();
      if (message.type === 'log' && message.data.startsWith(prefix)) return message.data;
    }
  }
}

/** A TCP server standing for the registry: answers `sha256:<hex of all bytes received>`. */
async function startHashServer(): Promise<{ server: Server; port: number; received: number[] }> {
  const received: number[] = [];
  const server = createServer({ allowHalfOpen: true }, (socket: Socket) => {
    const hash = createHash('sha256');
    let bytes = 0;
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk);
      bytes += chunk.length;
    });
    socket.on('end', () => {
      received.push(bytes);
      socket.end(`sha256:${hash.digest('hex')}`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { server, port: address.port, received };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('CloudHypervisorVmm with the Cloud Hypervisor stand-in', () => {
  let dir: string;
  let registry: { server: Server; port: number; received: number[] };
  const handles: VmHandle[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-ch-'));
    registry = await startHashServer();
  });

  afterEach(async () => {
    for (const handle of handles.splice(0)) await handle.kill();
    await new Promise<void>((resolve) =>
      registry.server.close(() => {
        resolve();
      }),
    );
    await rm(dir, { recursive: true, force: true });
  });

  async function setup(
    scenario: CloudHypervisorStandInScenario,
    network: 'isolated' | 'egress' = 'isolated',
    tunnelBytes?: number,
  ) {
    const standIn = await createCloudHypervisorStandIn({
      dir,
      scenario,
      ...(tunnelBytes === undefined ? {} : { tunnelBytes }),
    });
    const runDir = path.join(dir, 'run');
    await mkdir(runDir);
    const spec: VmSpec = {
      id: `b_test${scenario.replace(/-/g, '')}`,
      runDir,
      kernelPath: path.join(dir, 'vmlinuz'),
      initramfsPath: path.join(dir, 'initramfs.img'),
      cmdline: '',
      memoryMb: 512,
      cpus: 1,
      disks: [{ path: path.join(dir, 'rootfs.img'), readOnly: true, serial: DISK_SERIALS.root }],
      network:
        network === 'egress'
          ? {
              mode: 'egress',
              registryTarget: { host: '127.0.0.1', port: registry.port },
              egressProxySocket: path.join(runDir, 'egress.sock'),
            }
          : { mode: 'isolated', registryTarget: { host: '127.0.0.1', port: registry.port } },
      consoleLogPath: path.join(dir, 'console.log'),
    };
    return { standIn, spec, runDir };
  }

  async function start(vmm: CloudHypervisorVmm, spec: VmSpec): Promise<CloudHypervisorVm> {
    const handle = await vmm.start(spec);
    handles.push(handle);
    return handle;
  }

  it('spawns with --api-socket and --event-monitor, then creates and boots the VM with Content-Length on every request', async () => {
    const { standIn, spec, runDir } = await setup('normal');
    const vmm = new CloudHypervisorVmm({ binary: standIn.binary, logger });
    const vm = await start(vmm, spec);

    const records = await standIn.records();
    const argv = records.find((r) => r.kind === 'argv');
    expect(argv?.args).toEqual([
      '--api-socket',
      `path=${path.join(runDir, 'ch-api.sock')}`,
      '--event-monitor',
      'fd=3',
    ]);
    const requests = await standIn.requests();
    expect(requests.map((r) => `${r.method} ${r.endpoint}`)).toEqual([
      'GET vmm.ping',
      'PUT vm.create',
      'PUT vm.boot',
    ]);
    for (const request of requests) expect(request.contentLength).not.toBeNull();
    expect(requests[1]!.contentType).toBe('application/json');
    expect(requests[1]!.body).toEqual(
      buildCloudHypervisorVmConfig(spec, { vsockSocket: path.join(runDir, 'vsock.sock') }),
    );
    expect(vm.pid).toBe(records.find((r) => r.kind === 'listening')?.pid);
    expect(await readFile(spec.consoleLogPath, 'utf8')).toContain('Linux version');
  });

  it('hands the first agent connection out as the channel: hello arrives and start is answered', async () => {
    const { standIn, spec } = await setup('normal');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    const channel = await vm.channel();
    const reader = new MessageReader(channel);
    const hello = await reader.next();
    expect(hello).toMatchObject({ type: 'hello', protocol: 1 });
    channel.write(
      `${JSON.stringify({ type: 'start', registryToken: 'tok', secrets: { a: '1', b: '2' } })}\n`,
    );
    expect(await reader.log('start received')).toBe('start received with 2 secret(s)');
  });

  it('tunnels each guest registry connection to the registry over TCP, both directions, with half-close', async () => {
    const tunnelBytes = 8 * 1024 * 1024;
    const { standIn, spec } = await setup('normal', 'isolated', tunnelBytes);
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    const reader = new MessageReader(await vm.channel());
    const line = await reader.log('registry-answer ');
    const observed = JSON.parse(line.slice('registry-answer '.length)) as {
      sentBytes: number;
      sentSha: string;
      answer: string;
    };
    expect(observed.sentBytes).toBe(tunnelBytes);
    expect(observed.answer).toBe(`sha256:${observed.sentSha}`);
    expect(registry.received).toEqual([tunnelBytes]);
  });

  it('shuts down with vm.shutdown then vmm.shutdown, and leaves no socket behind', async () => {
    const { standIn, spec, runDir } = await setup('normal');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    const channel = await vm.channel();
    const channelClosed = new Promise<void>((resolve) => channel.on('close', resolve));
    await vm.shutdown(10_000);
    expect(await vm.exited).toEqual({ code: 0, signal: null });
    await channelClosed;
    const requests = await standIn.requests();
    expect(requests.slice(-2).map((r) => r.endpoint)).toEqual(['vm.shutdown', 'vmm.shutdown']);
    expect(vm.exitReason).toBe('shutdown');
    expect(await readdir(runDir)).toEqual([]);
  });

  it('treats a guest reboot as failure: kills the VMM and reports guest_rebooted', async () => {
    const { standIn, spec, runDir } = await setup('reboot');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    const channel = await vm.channel();
    const channelClosed = new Promise<void>((resolve) => channel.on('close', resolve));
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(vm.exitReason).toBe('guest_rebooted');
    await channelClosed;
    expect(alive(vm.pid)).toBe(false);
    expect((await standIn.records()).some((r) => r.kind === 'guest' && r.what === 'rebooted')).toBe(
      true,
    );
    expect(await readdir(runDir)).toEqual([]);
  });

  it('turns a 500 with an error body into VMM_API_ERROR and kills the VMM', async () => {
    const { standIn, spec, runDir } = await setup('boot-fails');
    const vmm = new CloudHypervisorVmm({ binary: standIn.binary, logger });
    const failure = await vmm.start(spec).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isVmError(failure, 'VMM_API_ERROR')).toBe(true);
    if (!isVmError(failure)) throw new Error('expected a VmError');
    expect(failure.message).toContain('PUT /api/v1/vm.boot answered 500');
    expect(failure.details).toMatchObject({
      status: 500,
      endpoint: 'vm.boot',
      messages: [
        'Error from API',
        'The VM could not boot',
        'Error loading kernel: stand-in scenario boot-fails',
      ],
    });
    const listening = (await standIn.records()).find((r) => r.kind === 'listening');
    expect(listening?.pid).toBeGreaterThan(0);
    expect(alive(listening!.pid)).toBe(false);
    expect(await readdir(runDir)).toEqual([]);
  });

  it('fails with VMM_START_FAILED, quoting stderr, when the VMM exits before its API answers', async () => {
    const { standIn, spec } = await setup('no-api');
    const vmm = new CloudHypervisorVmm({ binary: standIn.binary, logger });
    await expect(vmm.start(spec)).rejects.toMatchObject({
      code: 'VMM_START_FAILED',
      message: expect.stringContaining('stand-in refuses to start') as unknown,
    });
  });

  it('fails with VMM_START_FAILED when the binary does not exist', async () => {
    const { spec } = await setup('normal');
    const vmm = new CloudHypervisorVmm({ binary: path.join(dir, 'absent'), logger });
    await expect(vmm.start(spec)).rejects.toMatchObject({ code: 'VMM_START_FAILED' });
    expect(await readdir(spec.runDir)).toEqual([]);
  });

  it('rejects channel() with VMM_VM_EXITED when the VM ends before the agent connects', async () => {
    const { standIn, spec } = await setup('no-agent');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    const channel = vm.channel();
    await vm.kill();
    await expect(channel).rejects.toMatchObject({ code: 'VMM_VM_EXITED' });
  });

  it('kill() is idempotent and resolves once the process is gone', async () => {
    const { standIn, spec } = await setup('normal');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    await Promise.all([vm.kill(), vm.kill()]);
    await vm.kill();
    expect(await vm.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(vm.exitReason).toBe('killed');
    expect(alive(vm.pid)).toBe(false);
  });

  it("tunnels an egress guest's proxy connections over vsock to the build's proxy socket, with no network device", async () => {
    const { standIn, spec } = await setup('normal', 'egress');
    if (spec.network.mode !== 'egress') throw new Error('egress spec expected');
    const denials: string[] = [];
    const guard = new LoopbackOnlyConnector();
    // The real proxy on the spec's socket; the guest's request for probe.test resolves (by the
    // injected resolver) to a private address and is refused without any connection.
    const proxy = createBuildEgressProxy({
      config: parseEgressConfig({}).config!,
      allowedHosts: undefined,
      clock: new ManualClock(),
      scheduler: new ManualClock(),
      logger,
      onDenied: (denial) => denials.push(denial.message),
      resolve: () => Promise.resolve([{ address: '10.0.0.5', family: 4 }]),
      connect: guard.connect,
      hostAddresses: [],
    });
    await proxy.listen({ path: spec.network.egressProxySocket });
    try {
      const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
      const reader = new MessageReader(await vm.channel());
      expect(await reader.log('egress-answer ')).toBe('egress-answer HTTP/1.1 403 Forbidden');
      expect(denials).toEqual(['denied probe.test:80 (10.0.0.5): private address']);
      expect(guard.calls).toEqual([]);
      const create = (await standIn.requests()).find((r) => r.endpoint === 'vm.create') as
        { body: { net?: unknown; payload: { cmdline: string } } } | undefined;
      expect(create?.body).not.toHaveProperty('net');
      expect(create?.body.payload.cmdline).toContain('kiln.egress_vsock=1026');
    } finally {
      await proxy.close();
    }
  });

  it('gives an isolated guest no egress tunnel', async () => {
    const { standIn, spec } = await setup('normal', 'isolated');
    const vm = await start(new CloudHypervisorVmm({ binary: standIn.binary, logger }), spec);
    await new MessageReader(await vm.channel()).log('registry-answer ');
    expect(existsSync(path.join(spec.runDir, 'vsock.sock_1026'))).toBe(false);
    const create = (await standIn.requests()).find((r) => r.endpoint === 'vm.create') as
      { body: { net?: unknown; payload: { cmdline: string } } } | undefined;
    expect(create?.body).not.toHaveProperty('net');
    expect(create?.body.payload.cmdline).not.toContain('kiln.egress_vsock');
  });
});
