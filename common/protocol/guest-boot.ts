/**
 * The boot-time contract between the host's VM drivers and the guest's init and agent:
 * disk serials, kernel command-line keys and fixed guest addresses. The guest init (a shell
 * script in images/) mirrors these values; a test checks that it does.
 */

/** virtio-blk serials; the guest finds each disk by /sys/block/vd* /serial, never by order. */
export const DISK_SERIALS = {
  root: 'kiln-root',
  source: 'kiln-source',
  config: 'kiln-config',
  scratch: 'kiln-scratch',
  /** The build's fork of its scope's persistent cache disk; only on builds with a cache scope. */
  cache: 'kiln-cache',
} as const;

/**
 * Kernel command-line keys read by the guest init/agent:
 * - `kiln.channel=serial:<port name>` or `kiln.channel=vsock:<port>` (agent dials CID 2).
 * - `kiln.net=user` — QEMU user networking with `restrict=on` in every mode: eth0 =
 *   10.0.2.15/24, no route, no resolver; the registry is at QEMU_GUEST_REGISTRY and, in
 *   `egress` mode, the host's filtering proxy at QEMU_GUEST_EGRESS_PROXY (both guestfwd).
 * - `kiln.net=none` plus `kiln.registry_vsock=<port>` — Cloud Hypervisor (no network device in
 *   any mode): the guest init listens on 127.0.0.1:5000 and tunnels each connection to the
 *   host over vsock.
 * - `kiln.egress_vsock=<port>` — Cloud Hypervisor `egress` mode: the guest init listens on
 *   VSOCK_GUEST_EGRESS_PROXY and tunnels each connection to the host's proxy over vsock.
 * - `kiln.registry=<host:port>` — where the guest reaches the registry.
 */
export const CMDLINE_KEYS = {
  channel: 'kiln.channel',
  net: 'kiln.net',
  registryVsock: 'kiln.registry_vsock',
  egressVsock: 'kiln.egress_vsock',
  registry: 'kiln.registry',
} as const;

/** Registry address inside the guest under QEMU user networking (a guestfwd target). */
export const QEMU_GUEST_REGISTRY = { host: '10.0.2.100', port: 5000 } as const;

/** Registry address inside the guest when it is tunnelled over vsock (Cloud Hypervisor). */
export const VSOCK_GUEST_REGISTRY = { host: '127.0.0.1', port: 5000 } as const;

/** Host-side vsock port that carries registry connections under Cloud Hypervisor. */
export const REGISTRY_VSOCK_PORT = 1025;

/** The egress proxy inside the guest under QEMU (a second guestfwd on the same address). */
export const QEMU_GUEST_EGRESS_PROXY = { host: '10.0.2.100', port: 3128 } as const;

/** The egress proxy inside the guest when it is tunnelled over vsock (Cloud Hypervisor). */
export const VSOCK_GUEST_EGRESS_PROXY = { host: '127.0.0.1', port: 3128 } as const;

/** Host-side vsock port that carries egress proxy connections under Cloud Hypervisor. */
export const EGRESS_VSOCK_PORT = 1026;

/**
 * Boot-stage markers the guest writes on its serial console, one line each:
 * `kiln-boot: <stage> <seconds of guest uptime>` (from /proc/uptime), so the host can tell
 * from the console log it already keeps where boot time goes (src/vm/boot-stages.ts). In boot
 * order: the initramfs init starting (the kernel's share ends here), its modules loaded, the
 * root overlay mounted, the root filesystem's init starting, that init starting the agent, the
 * agent process running its first line, and the agent about to send `hello`.
 */
export const BOOT_STAGE_PREFIX = 'kiln-boot:';

export const BOOT_STAGES = [
  'initramfs',
  'modules',
  'root',
  'init',
  'agent-exec',
  'agent-process',
  'agent-ready',
] as const;

export type BootStage = (typeof BOOT_STAGES)[number];
