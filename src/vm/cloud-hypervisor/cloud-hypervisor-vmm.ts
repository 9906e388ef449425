import { unlink } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { isGuestRebootEvent } from './cloud-hypervisor-event-parser.js';
import { CloudHypervisorProcess } from './cloud-hypervisor-process.js';
import {
  buildCloudHypervisorVmConfig,
  RUN_DIR_FILES,
  type EgressLink,
} from './cloud-hypervisor-vm-config.js';
import { CloudHypervisorVm } from './cloud-hypervisor-vm.js';
import { EgressLinkPool } from './egress-link-pool.js';
import { assertUnixSocketPath, HybridVsockListener } from './hybrid-vsock-listener.js';
import { tunnelToTcp } from './registry-tunnel.js';
import { createTapDevice, deleteTapDevice } from './tap-device.js';
import { AGENT_VSOCK_PORT } from '../../../common/protocol/agent-messages.js';
import { REGISTRY_VSOCK_PORT, VSOCK_GUEST_REGISTRY } from '../../../common/protocol/guest-boot.js';
import { VmError } from '../vm-error.js';
import type { Vmm, VmSpec } from '../vmm.js';

export interface CloudHypervisorVmmOptions {
  /** Path or name (looked up in PATH) of the `cloud-hypervisor` binary. */
  binary: string;
  logger: Logger;
  /**
   * Prefix for per-VM TAP devices (`<prefix><n>`, at most 15 bytes in all), needed only for
   * `egress` builds (KILN_CH_TAP_PREFIX). Unset: egress builds fail with
   * VMM_NETWORK_UNAVAILABLE.
   */
  tapPrefix?: string | undefined;
  /** How long the VMM may take to answer on its API socket. Default 10 s. */
  startTimeoutMs?: number | undefined;
  /** The `ip` binary (iproute2) used to create TAP devices. Default `ip` from PATH. */
  ipBinary?: string | undefined;
}

/**
 * The production VMM driver (docs/contracts.md#vmm-drivers): one `cloud-hypervisor` process per
 * build, driven over its REST API (`PUT /api/v1/vm.create`, `vm.boot`, `vm.shutdown`,
 * `vmm.shutdown`; docs/cloud-hypervisor-api.md). Serial console to `spec.consoleLogPath`, virtio
 * console off, virtio-rng, one virtio-blk disk per `spec.disks` entry found by serial.
 *
 * Agent channel and registry (docs/contracts.md#agent-channel): hybrid vsock. Before `vm.boot` the
 * host listens on `<runDir>/vsock.sock_1024` (the agent dials CID 2 port 1024; the first connection
 * is the channel) and `<runDir>/vsock.sock_1025` (each connection is piped to
 * `spec.network.registryTarget` over TCP; the guest init serves it on 127.0.0.1:5000).
 *
 * Network modes (docs/contracts.md#network-modes): `isolated` has no network device at all — the
 * registry tunnel is the guest's only way out. `egress` adds a TAP-backed virtio-net device, which
 * needs host setup the daemon does not do:
 * - the daemon needs CAP_NET_ADMIN (it runs `ip tuntap add` / `ip addr add` / `ip link set up`
 *   and `ip link delete` for `<tapPrefix><n>`), and `tapPrefix` (KILN_CH_TAP_PREFIX) set;
 * - each VM gets a /30 out of 172.30.0.0/16 (host `.1`, guest `.2`, passed to the guest as
 *   `kiln.net=tap ip=<guest>::<host>:255.255.255.252::eth0:off`); the operator enables
 *   forwarding (`sysctl net.ipv4.ip_forward=1`) and NATs that block out of the uplink (e.g.
 *   `iptables -t nat -A POSTROUTING -s 172.30.0.0/16 ! -d 172.30.0.0/16 -j MASQUERADE`), and
 *   gives guests a resolver if names must resolve.
 * Missing prefix or a TAP that cannot be created fails the start with VMM_NETWORK_UNAVAILABLE
 * naming the cause. The registry stays on the vsock tunnel in both modes.
 *
 * A guest reboot (event monitor `vm`/`rebooting`) is a failure: the VM is killed and its
 * handle's `exitReason` is `guest_rebooted`.
 */
export class CloudHypervisorVmm implements Vmm {
  readonly name = 'cloud-hypervisor' as const;
  readonly accel = 'kvm';
  readonly guestRegistryAddress = `${VSOCK_GUEST_REGISTRY.host}:${VSOCK_GUEST_REGISTRY.port}`;
  private readonly binary: string;
  private readonly logger: Logger;
  private readonly links: EgressLinkPool | undefined;
  private readonly startTimeoutMs: number;
  private readonly ipBinary: string | undefined;

  constructor(options: CloudHypervisorVmmOptions) {
    if (options.binary.trim() === '') throw new Error('CloudHypervisorVmm: binary is required');
    this.binary = options.binary;
    this.logger = options.logger;
    this.links =
      options.tapPrefix === undefined || options.tapPrefix === ''
        ? undefined
        : new EgressLinkPool(options.tapPrefix);
    this.startTimeoutMs = options.startTimeoutMs ?? 10_000;
    this.ipBinary = options.ipBinary;
  }

  async start(spec: VmSpec): Promise<CloudHypervisorVm> {
    const logger = this.logger.child({ vmId: spec.id, vmm: this.name });
    if (spec.network.mode === 'egress' && this.links === undefined) {
      throw new VmError(
        'VMM_NETWORK_UNAVAILABLE',
        'egress networking under Cloud Hypervisor needs a TAP prefix (KILN_CH_TAP_PREFIX), CAP_NET_ADMIN and host NAT for 172.30.0.0/16',
      );
    }
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
      let egress: EgressLink | undefined;
      if (spec.network.mode === 'egress' && this.links !== undefined) {
        const links = this.links;
        const link = links.acquire();
        cleanups.push(() => {
          links.release(link.index);
          return Promise.resolve();
        });
        await createTapDevice({
          name: link.tap,
          hostIp: link.hostIp,
          prefixLength: link.prefixLength,
          ipBinary: this.ipBinary,
        });
        cleanups.push(() => deleteTapDevice(link.tap, this.ipBinary));
        egress = link;
      }

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
          tunnelToTcp(socket, registryTarget, logger);
        },
        { allowHalfOpen: true },
      );
      cleanups.push(() => registryListener.close());
      cleanups.push(() => unlink(vsockSocket).catch(() => undefined));
      cleanups.push(() => unlink(apiSocketPath).catch(() => undefined));

      const config = buildCloudHypervisorVmConfig(spec, { vsockSocket }, egress);
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
