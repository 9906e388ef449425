import { unlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isGuestRebootEvent } from './cloud-hypervisor-event-parser.js';
import { CloudHypervisorProcess } from './cloud-hypervisor-process.js';
import { buildCloudHypervisorVmConfig, RUN_DIR_FILES } from './cloud-hypervisor-vm-config.js';
import { CloudHypervisorVm } from './cloud-hypervisor-vm.js';
import { assertUnixSocketPath, HybridVsockListener } from './hybrid-vsock-listener.js';
import { tunnelVsockConnection } from './vsock-tunnel.js';
import { AGENT_VSOCK_PORT } from '../../../common/protocol/agent-messages.js';
import {
  EGRESS_VSOCK_PORT,
  REGISTRY_VSOCK_PORT,
  VSOCK_GUEST_EGRESS_PROXY,
  VSOCK_GUEST_REGISTRY,
} from '../../../common/protocol/guest-boot.js';
import type { Vmm, VmSpec } from '../vmm.js';

export interface CloudHypervisorVmmOptions {
  /** Path or name (looked up in PATH) of the `cloud-hypervisor` binary. */
  binary: string;
  logger: Logger;
  /** How long the VMM may take to answer on its API socket. Default 10 s. */
  startTimeoutMs?: number | undefined;
}

/**
 * The production VMM driver (docs/contracts.md#vmm-drivers): one `cloud-hypervisor` process per
 * build, driven over its REST API (`PUT /api/v1/vm.create`, `vm.boot`, `vm.shutdown`,
 * `vmm.shutdown`; docs/cloud-hypervisor-api.md). Serial console to `spec.consoleLogPath`, virtio
 * console off, virtio-rng, one virtio-blk disk per `spec.disks` entry found by serial.
 *
 * Agent channel, registry and egress (docs/contracts.md#agent-channel): hybrid vsock. Before
 * `vm.boot` the host listens on `<runDir>/vsock.sock_1024` (the agent dials CID 2 port 1024;
 * the first connection is the channel), `<runDir>/vsock.sock_1025` (each connection is piped to
 * `spec.network.registryTarget` over TCP; the guest init serves it on 127.0.0.1:5000) and, in
 * `egress` mode, `<runDir>/vsock.sock_1026` (each connection is piped to the build's egress
 * proxy socket; the guest init serves it on 127.0.0.1:3128).
 *
 * Network modes (docs/contracts.md#network-modes): no mode has a network device, so the guest
 * has no route of its own by construction; the vsock tunnels are its only ways out, and no TAP
 * device, CAP_NET_ADMIN or host NAT is needed.
 *
 * A guest reboot (event monitor `vm`/`rebooting`) is a failure: the VM is killed and its
 * handle's `exitReason` is `guest_rebooted`.
 */
export class CloudHypervisorVmm implements Vmm {
  readonly name = 'cloud-hypervisor' as const;
  readonly accel = 'kvm';
  readonly guestRegistryAddress = `${VSOCK_GUEST_REGISTRY.host}:${VSOCK_GUEST_REGISTRY.port}`;
  readonly guestEgressProxyAddress = `${VSOCK_GUEST_EGRESS_PROXY.host}:${VSOCK_GUEST_EGRESS_PROXY.port}`;
  private readonly binary: string;
  private readonly logger: Logger;
  private readonly startTimeoutMs: number;

  constructor(options: CloudHypervisorVmmOptions) {
    if (options.binary.trim() === '') throw new Error('CloudHypervisorVmm: binary is required');
    this.binary = options.binary;
    this.logger = options.logger;
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
  }

  async start(spec: VmSpec): Promise<CloudHypervisorVm> {
    const logger = this.logger.child({ vmId: spec.id, vmm: this.name });
    const apiSocketPath = join(spec.runDir, RUN_DIR_FILES.apiSocket);
    const vsockSocket = join(spec.runDir, RUN_DIR_FILES.vsockSocket);
    assertUnixSocketPath(apiSocketPath);

    const cleanups: (() => Promise<void>)[] = [];
    const cleanup = async (): Promise<void> => {
      for (const step of cleanups.reverse()) {
        await step().catch((err: unknown) => {
          logger.warn({ err }, 'cloud-hypervisor cleanup step failed');
        });
      }
      cleanups.length = 0;
    };

    let vm: CloudHypervisorVm | undefined;
    let proc: CloudHypervisorProcess | undefined;
    try {
      const pendingAgents: Socket[] = [];
      const agentListener = await HybridVsockListener.listen(
        vsockSocket,
        AGENT_VSOCK_PORT,
        (socket) => {
          if (vm === undefined) {
            pendingAgents.push(socket);
          } else if (!vm.acceptAgent(socket)) {
            logger.warn('extra agent connection refused');
            socket.destroy();
          }
        },
      );
      cleanups.push(() => agentListener.close());
      const { registryTarget } = spec.network;
      const registryListener = await HybridVsockListener.listen(
        vsockSocket,
        REGISTRY_VSOCK_PORT,
        (socket) => {
          tunnelVsockConnection(socket, registryTarget, logger);
        },
        { allowHalfOpen: true },
      );
      cleanups.push(() => registryListener.close());
      const { network } = spec;
      if (network.mode === 'egress') {
        const egressListener = await HybridVsockListener.listen(
          vsockSocket,
          EGRESS_VSOCK_PORT,
          (socket) => {
            tunnelVsockConnection(socket, { path: network.egressProxySocket }, logger);
          },
          { allowHalfOpen: true },
        );
        cleanups.push(() => egressListener.close());
      }
      cleanups.push(() => unlink(vsockSocket).catch(() => undefined));
      cleanups.push(() => unlink(apiSocketPath).catch(() => undefined));

      const config = buildCloudHypervisorVmConfig(spec, { vsockSocket });
      // Cloud Hypervisor binds both sockets itself and fails on a stale file.
      await unlink(apiSocketPath).catch(() => undefined);
      await unlink(vsockSocket).catch(() => undefined);
      proc = await CloudHypervisorProcess.start({
        binary: this.binary,
        apiSocketPath,
        logger,
        startTimeoutMs: this.startTimeoutMs,
        onEvent: (event) => {
          logger.debug({ event }, 'cloud-hypervisor event');
          if (isGuestRebootEvent(event)) vm?.guestRebooted();
        },
      });
      vm = new CloudHypervisorVm(spec.id, proc, logger, cleanup);
      for (const socket of pendingAgents.splice(0)) {
        if (!vm.acceptAgent(socket)) socket.destroy();
      }
      await proc.api.createVm(config);
      await proc.api.bootVm();
      logger.info({ pid: proc.pid, network: spec.network.mode }, 'cloud-hypervisor VM booted');
      return vm;
    } catch (err) {
      logger.error({ err }, 'cloud-hypervisor VM failed to start');
      if (vm !== undefined) {
        await vm.kill();
      } else {
        if (proc !== undefined) await proc.kill();
        await cleanup();
      }
      throw err;
    }
  }
}
