import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { CloudHypervisorProcess, ProcessExit } from './cloud-hypervisor-process.js';
import { VmError } from '../vm-error.js';
import type { VmHandle } from '../vmm.js';

/** Why a Cloud Hypervisor VM ended, when the driver knows better than the exit status. */
export type CloudHypervisorExitReason = 'guest_rebooted' | 'killed' | 'shutdown';

/**
 * A running Cloud Hypervisor builder VM. `exited` resolves after the process is gone AND every
 * resource the driver created for it (listeners and socket files) has been released.
 */
export class CloudHypervisorVm implements VmHandle {
  readonly id: string;
  readonly exited: Promise<ProcessExit>;
  private agentSocket: Socket | undefined;
  private readonly agentConnected: Promise<Duplex>;
  private resolveAgent!: (socket: Duplex) => void;
  private rejectAgent!: (err: unknown) => void;
  private reason: CloudHypervisorExitReason | undefined;
  private ended = false;

  constructor(
    id: string,
    private readonly process: CloudHypervisorProcess,
    private readonly logger: Logger,
    cleanup: () => Promise<void>,
  ) {
    this.id = id;
    this.agentConnected = new Promise<Duplex>((resolve, reject) => {
      this.resolveAgent = resolve;
      this.rejectAgent = reject;
    });
    // Marked handled: callers that never ask for the channel must not see a rejection.
    this.agentConnected.catch(() => undefined);
    this.exited = process.exited.then(async (exit) => {
      this.ended = true;
      this.rejectAgent(
        new VmError('VMM_VM_EXITED', `VM ${id} ended before the agent connected`, {
          details: { ...exit, reason: this.reason ?? null },
        }),
      );
      await cleanup().catch((err: unknown) => {
        this.logger.error({ err }, 'cleanup after the VM ended failed');
      });
      this.logger.info({ ...exit, reason: this.reason ?? null }, 'cloud-hypervisor VM ended');
      return exit;
    });
  }

  get pid(): number {
    return this.process.pid;
  }

  /** Set when the driver ended the VM itself: a guest reboot, a kill or a shutdown. */
  get exitReason(): CloudHypervisorExitReason | undefined {
    return this.reason;
  }

  /** Called by the driver for the first connection on the agent port. */
  acceptAgent(socket: Socket): boolean {
    if (this.agentSocket !== undefined || this.ended) return false;
    this.agentSocket = socket;
    this.resolveAgent(socket);
    return true;
  }

  /** Called by the driver when the event monitor reports a guest reset. */
  guestRebooted(): void {
    if (this.ended) return;
    this.reason ??= 'guest_rebooted';
    this.logger.error('guest rebooted; a builder VM must not come back, killing it');
    void this.kill();
  }

  channel(): Promise<Duplex> {
    return this.agentConnected;
  }

  async shutdown(graceMs: number): Promise<void> {
    if (this.ended) {
      await this.exited;
      return;
    }
    this.reason ??= 'shutdown';
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => {
        resolve('timeout');
      }, graceMs);
    });
    const orderly = (async () => {
      // vm.shutdown stops the guest; vmm.shutdown then ends the process. Either may fail
      // when the VM is already on its way down; the exit is what counts.
      await this.process.api.shutdownVm().catch((err: unknown) => {
        this.logger.debug({ err }, 'vm.shutdown failed');
      });
      await this.process.api.shutdownVmm().catch((err: unknown) => {
        this.logger.debug({ err }, 'vmm.shutdown failed');
      });
      await this.exited;
      return 'exited' as const;
    })();
    const outcome = await Promise.race([
      orderly,
      this.exited.then(() => 'exited' as const),
      graceOver,
    ]);
    if (timer !== undefined) clearTimeout(timer);
    if (outcome === 'timeout') {
      this.logger.warn({ graceMs }, 'VM did not stop within its grace period; killing it');
      await this.kill();
    }
    await this.exited;
  }

  async kill(): Promise<void> {
    this.reason ??= 'killed';
    await this.process.kill();
    await this.exited;
  }
}
