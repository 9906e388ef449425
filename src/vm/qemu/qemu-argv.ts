import { FALLBACK_TSC_KHZ } from './host-tsc-khz.js';
import { AGENT_SERIAL_PORT_NAME } from '../../../common/protocol/agent-messages.js';
import {
  CMDLINE_KEYS,
  QEMU_GUEST_EGRESS_PROXY,
  QEMU_GUEST_REGISTRY,
} from '../../../common/protocol/guest-boot.js';
import type { GuestNetwork, VmSpec } from '../vmm.js';

/** Acceleration QEMU runs the guest with. */
export type QemuAccel = 'kvm' | 'tcg';

/** Guest address the registry forward listens on under QEMU user networking. */
export const QEMU_GUEST_REGISTRY_ADDRESS = `${QEMU_GUEST_REGISTRY.host}:${QEMU_GUEST_REGISTRY.port}`;

/** Guest address the egress proxy forward listens on under QEMU user networking. */
export const QEMU_GUEST_EGRESS_PROXY_ADDRESS = `${QEMU_GUEST_EGRESS_PROXY.host}:${QEMU_GUEST_EGRESS_PROXY.port}`;

/** Chardev/netdev ids used on the command line. */
const AGENT_CHARDEV = 'agent';
const CONSOLE_CHARDEV = 'console';
const NETDEV = 'n0';

/**
 * QEMU option values are comma-separated key=value lists; a literal comma inside a value is
 * written as two commas (qemu-options: "commas in values must be doubled").
 */
export function escapeQemuValue(value: string): string {
  return value.replace(/,/g, ',,');
}

/**
 * The command `guestfwd=…-cmd:` runs for each guest connection to the registry address: it
 * joins its stdin/stdout to the registry on the host. socat's TCP6 form takes a bracketed
 * address.
 */
export function registryForwardCommand(target: { host: string; port: number }): string {
  const v6 = target.host.includes(':');
  const host = v6 ? `[${target.host.replace(/^\[|\]$/g, '')}]` : target.host;
  return `socat - ${v6 ? 'TCP6' : 'TCP'}:${host}:${target.port}`;
}

/**
 * The command the egress guestfwd runs for each guest connection to the proxy address: it
 * joins its stdin/stdout to the build's proxy on its Unix socket.
 */
export function egressForwardCommand(socketPath: string): string {
  // socat address syntax: ',' ':' and '!' would split the address; run dirs have none.
  if (/[,:!\s]/.test(socketPath)) {
    throw new Error(`egress proxy socket path has a character socat would split on: ${socketPath}`);
  }
  return `socat - UNIX-CONNECT:${socketPath}`;
}

/**
 * `-netdev user` for a guest network mode (docs/contracts.md#network-modes). Both modes run
 * with `restrict=on`, which cuts the guest off from the host and the outside world (slirp
 * neither NATs nor answers DNS); the only ways out are guestfwd forwards, each spawned per
 * connection: 10.0.2.100:5000 to the registry, and in `egress` mode 10.0.2.100:3128 to the
 * build's filtering proxy, which judges every destination on the host.
 */
export function userNetdev(network: GuestNetwork): string {
  const fwds = [
    `guestfwd=tcp:${QEMU_GUEST_REGISTRY_ADDRESS}-cmd:${escapeQemuValue(
      registryForwardCommand(network.registryTarget),
    )}`,
  ];
  if (network.mode === 'egress') {
    fwds.push(
      `guestfwd=tcp:${QEMU_GUEST_EGRESS_PROXY_ADDRESS}-cmd:${escapeQemuValue(
        egressForwardCommand(network.egressProxySocket),
      )}`,
    );
  }
  return `user,id=${NETDEV},restrict=on,${fwds.join(',')}`;
}

/**
 * Kernel command line under QEMU: the boot contract (common/protocol/guest-boot.ts), then under
 * TCG the TSC rate (`tsc_early_khz`, see host-tsc-khz.ts), then the extras.
 */
export function qemuKernelCmdline(extra: string, tscKhz?: number): string {
  const base = [
    'console=ttyS0',
    'panic=-1',
    `${CMDLINE_KEYS.channel}=serial:${AGENT_SERIAL_PORT_NAME}`,
    `${CMDLINE_KEYS.net}=user`,
    `${CMDLINE_KEYS.registry}=${QEMU_GUEST_REGISTRY_ADDRESS}`,
    ...(tscKhz === undefined ? [] : [`tsc_early_khz=${tscKhz}`]),
  ];
  const trimmed = extra.trim();
  return trimmed === '' ? base.join(' ') : `${base.join(' ')} ${trimmed}`;
}

/**
 * The argv (without the binary) of one builder VM: `-M microvm`, no default devices, disks as
 * virtio-blk-device with their serials, the agent channel as a virtio-serial port backed by a Unix
 * socket QEMU connects to (the host listens first, docs/contracts.md#agent-channel), serial console
 * appended to `spec.consoleLogPath`, user networking per mode, a virtio-rng device (entropy at
 * boot), `-no-reboot` so a guest reboot or panic ends the process.
 */
export function buildQemuArgv(
  spec: VmSpec,
  options: {
    accel: QemuAccel;
    agentSocketPath: string;
    /** Guest TSC rate, stated on the command line under TCG (required there). */
    tscKhz?: number;
  },
): string[] {
  const argv: string[] = [
    '-M',
    'microvm,x-option-roms=off,rtc=on',
    '-accel',
    options.accel,
    ...(options.accel === 'kvm' ? ['-cpu', 'host'] : []),
    '-m',
    `${spec.memoryMb}M`,
    '-smp',
    String(spec.cpus),
    '-nodefaults',
    '-no-user-config',
    '-nographic',
    '-no-reboot',
    '-kernel',
    spec.kernelPath,
    '-initrd',
    spec.initramfsPath,
    '-append',
    qemuKernelCmdline(
      spec.cmdline,
      options.accel === 'tcg' ? (options.tscKhz ?? FALLBACK_TSC_KHZ) : undefined,
    ),
    '-chardev',
    `file,id=${CONSOLE_CHARDEV},path=${escapeQemuValue(spec.consoleLogPath)},append=on`,
    '-serial',
    `chardev:${CONSOLE_CHARDEV}`,
  ];
  spec.disks.forEach((disk, i) => {
    const id = `disk${i}`;
    argv.push(
      '-drive',
      `id=${id},file=${escapeQemuValue(disk.path)},format=raw,if=none,readonly=${
        disk.readOnly ? 'on' : 'off'
      },aio=threads${disk.readOnly ? '' : ',discard=unmap'}`,
      '-device',
      `virtio-blk-device,drive=${id},serial=${escapeQemuValue(disk.serial)}`,
    );
  });
  argv.push(
    '-chardev',
    `socket,id=${AGENT_CHARDEV},path=${escapeQemuValue(options.agentSocketPath)},server=off`,
    '-device',
    'virtio-serial-device',
    '-device',
    `virtserialport,chardev=${AGENT_CHARDEV},name=${AGENT_SERIAL_PORT_NAME}`,
    '-netdev',
    userNetdev(spec.network),
    '-device',
    `virtio-net-device,netdev=${NETDEV}`,
    // Entropy for the guest's CRNG (the initramfs loads virtio_rng). Without it a TCG guest
    // (no RDRAND) waits seconds for jitter entropy, and Node's startup blocks in getrandom().
    '-device',
    'virtio-rng-device',
  );
  return argv;
}
