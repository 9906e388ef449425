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
 * - `kiln.net=user` — QEMU user networking: eth0 = 10.0.2.15/24, gateway 10.0.2.2,
 *   DNS 10.0.2.3 (egress only); the registry is at QEMU_GUEST_REGISTRY.
 * - `kiln.net=none` plus `kiln.registry_vsock=<port>` — Cloud Hypervisor isolated mode: the
 *   guest init listens on 127.0.0.1:5000 and tunnels each connection to the host over vsock.
 * - `kiln.registry=<host:port>` — where the guest reaches the registry.
 */
export const CMDLINE_KEYS = {
  channel: 'kiln.channel',
  net: 'kiln.net',
  registryVsock: 'kiln.registry_vsock',
  registry: 'kiln.registry',
} as const;

/** Registry address inside the guest under QEMU user networking (a guestfwd target). */
export const QEMU_GUEST_REGISTRY = { host: '10.0.2.100', port: 5000 } as const;

/** Registry address inside the guest when it is tunnelled over vsock (Cloud Hypervisor). */
export const VSOCK_GUEST_REGISTRY = { host: '127.0.0.1', port: 5000 } as const;

/** Host-side vsock port that carries registry connections under Cloud Hypervisor. */
export const REGISTRY_VSOCK_PORT = 1025;
