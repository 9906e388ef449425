import { open } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { hostTscKhz } from './host-tsc-khz.js';
import {
  buildQemuArgv,
  QEMU_GUEST_EGRESS_PROXY_ADDRESS,
  QEMU_GUEST_REGISTRY_ADDRESS,
  type QemuAccel,
} from './qemu-argv.js';
import { spawnVmmProcess, type VmmProcess } from '../vmm-process.js';
import type { VmHandle, Vmm, VmSpec } from '../vmm.js';

/** Default QEMU binary (Debian's qemu-system-x86). */
export const DEFAULT_QEMU_BINARY = 'qemu-system-x86_64';

/** File name of the agent socket inside a VM's run dir. */
const AGENT_SOCKET_NAME = 'agent.sock';

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes, NUL included). */
const MAX_SOCKET_PATH = 107;

/**
 * The QEMU `-M microvm` driver (docs/contracts.md#vmm-drivers): KVM where a probe boot succeeded,
 * TCG otherwise. The agent channel is a virtio-serial port whose chardev is a Unix socket: the host
 * listens on `<runDir>/agent.sock` before QEMU starts and QEMU connects to it
 * (docs/contracts.md#agent-channel), so no sleep-and-poll is needed. QEMU's stderr and the guest's
 * serial console both append to the spec's console log.
 */
export class QemuVmm implements Vmm {
  readonly name = 'qemu' as const;
  readonly accel: QemuAccel;
  readonly guestRegistryAddress = QEMU_GUEST_REGISTRY_ADDRESS;
  readonly guestEgressProxyAddress = QEMU_GUEST_EGRESS_PROXY_ADDRESS;
  private readonly binary: string;
  private readonly logger: Logger;
  private readonly tscKhz: number;

  constructor(options: {
    binary?: string | undefined;
    accel: QemuAccel;
    logger: Logger;
    /** Guest TSC rate under TCG; default: the host's (hostTscKhz). */
    tscKhz?: number;
  }) {
    this.binary = options.binary ?? DEFAULT_QEMU_BINARY;
    this.accel = options.accel;
    this.logger = options.logger;
    this.tscKhz = options.tscKhz ?? hostTscKhz();
  }

  async start(spec: VmSpec): Promise<VmHandle> {
    const socketPath = path.join(spec.runDir, AGENT_SOCKET_NAME);
    if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
      throw new Error(`agent socket path too long for a Unix socket: ${socketPath}`);
    }
    const server = net.createServer({ allowHalfOpen: false });
    const connected = new Promise<net.Socket>((resolve) => {
      server.once('connection', (socket) => {
        // One guest, one channel: stop accepting once QEMU is connected.
        server.close();
        resolve(socket);
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });

    const argv = buildQemuArgv(spec, {
      accel: this.accel,
      agentSocketPath: socketPath,
      tscKhz: this.tscKhz,
    });
    const consoleLog = await open(spec.consoleLogPath, 'a', 0o600);
    let proc: VmmProcess;
    try {
      proc = await spawnVmmProcess(this.binary, argv, {
        stdio: ['ignore', 'ignore', consoleLog.fd],
      });
    } catch (err) {
      server.close();
      throw err;
    } finally {
      await consoleLog.close();
    }
    this.logger.debug({ vmId: spec.id, pid: proc.pid, accel: this.accel }, 'qemu started');
    void proc.exited.then(() => {
      server.close();
    });
    return new QemuVmHandle(spec.id, proc, connected);
  }
}

class QemuVmHandle implements VmHandle {
  readonly pid: number;
  readonly executable: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private socket: net.Socket | null = null;

  constructor(
    readonly id: string,
    private readonly proc: VmmProcess,
    private readonly connected: Promise<net.Socket>,
  ) {
    this.pid = proc.pid;
    this.executable = proc.executable;
    this.exited = proc.exited;
    void connected.then((socket) => {
      this.socket = socket;
    });
  }

  async channel(): Promise<Duplex> {
    const result = await Promise.race([this.connected, this.exited.then((exit) => exit)]);
    if (result instanceof net.Socket) return result;
    throw new Error(
      `qemu exited (code ${String(result.code)}, signal ${String(result.signal)}) before connecting the agent channel`,
    );
  }

  /**
   * QEMU treats SIGTERM as a request to quit (it stops the guest and exits cleanly); the
   * microvm guest has no ACPI power button to press, so this is the graceful path. SIGKILL
   * follows after `graceMs`.
   */
  async shutdown(graceMs: number): Promise<void> {
    this.proc.child.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        resolve('timeout');
      }, graceMs);
    });
    const first = await Promise.race([this.exited, timedOut]);
    clearTimeout(timer);
    if (first === 'timeout') await this.kill();
    this.socket?.destroy();
  }

  async kill(): Promise<void> {
    await this.proc.kill();
    this.socket?.destroy();
  }
}
