import type { Duplex } from 'node:stream';

/** One virtio-blk disk handed to a guest. Guests find disks by `serial`, never by order. */
export interface DiskSpec {
  path: string;
  readOnly: boolean;
  /** virtio-blk serial (≤ 20 bytes): "kiln-root", "kiln-source", "kiln-config", "kiln-scratch". */
  serial: string;
}

/**
 * The guest's ways out (docs/contracts.md#network-modes). In no mode does the guest get a
 * route of its own: QEMU runs user networking with `restrict=on`, Cloud Hypervisor has no
 * network device, and each way out is a forward the driver sets up to one host endpoint.
 */
export type GuestNetwork =
  | {
      mode: 'isolated';
      /** host:port on the host that the guest's registry address forwards to. */
      registryTarget: { host: string; port: number };
    }
  | {
      mode: 'egress';
      registryTarget: { host: string; port: number };
      /**
       * The Unix socket the build's egress proxy listens on; the guest's proxy address
       * (`Vmm.guestEgressProxyAddress`) forwards there.
       */
      egressProxySocket: string;
    };

/** Everything needed to start one builder VM. */
export interface VmSpec {
  /** Unique id (the build id); names sockets and files. */
  id: string;
  /** Directory for this VM's sockets, console log and pid files; created by the caller. */
  runDir: string;
  kernelPath: string;
  initramfsPath: string;
  /** Kernel command line additions (the driver adds console and its own device parameters). */
  cmdline: string;
  memoryMb: number;
  cpus: number;
  disks: DiskSpec[];
  network: GuestNetwork;
  /** Serial console output goes here. */
  consoleLogPath: string;
}

/** A running VM, as a driver hands it back. */
export interface VmHandle {
  readonly id: string;
  /** Host pid of the VMM process. */
  readonly pid: number;
  /**
   * argv[0] basename the VMM process runs as, for its VmProcessRecord; when absent the
   * driver's `Vmm.name` is the executable's name.
   */
  readonly executable?: string;
  /**
   * The agent channel: a byte stream to the guest agent (virtio-serial or hybrid vsock),
   * connected once the guest opens its end. Resolves when the connection exists.
   */
  channel(): Promise<Duplex>;
  /** Resolves when the VMM process has exited, with its exit code or signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Asks the guest to stop (ACPI / vm.shutdown); resolves once the process is gone. */
  shutdown(graceMs: number): Promise<void>;
  /** SIGKILLs the VMM process; resolves once it is gone. Idempotent. */
  kill(): Promise<void>;
}

/** What a driver records so a later daemon can reap what a crashed one left behind. */
export interface VmProcessRecord {
  vmId: string;
  pid: number;
  /** Process start time (clock ticks since boot, /proc/<pid>/stat field 22): guards pid reuse. */
  startTicks: number;
  /** argv[0] basename the process was started with. */
  executable: string;
}

/**
 * A virtual machine monitor driver (docs/contracts.md#vmm-drivers). Two real implementations: QEMU
 * microvm and Cloud Hypervisor.
 */
export interface Vmm {
  readonly name: 'qemu' | 'cloud-hypervisor';
  /** Human-readable description of the acceleration in use, e.g. "kvm" or "tcg". */
  readonly accel: string;
  /** Guest address (host:port) the registry is reachable at inside the VM for this driver. */
  readonly guestRegistryAddress: string;
  /** Guest address (host:port) of the egress proxy forward for this driver (`egress` builds). */
  readonly guestEgressProxyAddress: string;
  start(spec: VmSpec): Promise<VmHandle>;
}
