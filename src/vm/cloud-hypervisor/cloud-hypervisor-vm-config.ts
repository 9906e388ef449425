import { AGENT_VSOCK_PORT } from '../../../common/protocol/agent-messages.js';
import {
  CMDLINE_KEYS,
  EGRESS_VSOCK_PORT,
  REGISTRY_VSOCK_PORT,
  VSOCK_GUEST_REGISTRY,
} from '../../../common/protocol/guest-boot.js';
import { VmError } from '../vm-error.js';
import type { VmSpec } from '../vmm.js';

/**
 * The subset of Cloud Hypervisor's `VmConfig` (its REST API's `vm.create` body) that Kiln sends to
 * `PUT /api/v1/vm.create`, described in docs/cloud-hypervisor-api.md. Field names are the API's
 * snake_case; a test validates built payloads against vm-create-schema.json.
 */
export interface CloudHypervisorVmConfig {
  payload: { kernel: string; initramfs: string; cmdline: string };
  cpus: { boot_vcpus: number; max_vcpus: number };
  memory: { size: number };
  disks: { path: string; readonly: boolean; serial: string; id: string }[];
  rng: { src: string };
  serial: { mode: 'File'; file: string };
  console: { mode: 'Off' };
  vsock: { cid: number; socket: string; id: string };
}

/** The guest's vsock context id; 0–2 are reserved (2 is the host), so the guest gets 3. */
const GUEST_CID = 3;

/** File names inside `VmSpec.runDir`. */
export const RUN_DIR_FILES = {
  apiSocket: 'ch-api.sock',
  vsockSocket: 'vsock.sock',
} as const;

/** virtio-blk serials are at most 20 bytes (VIRTIO_BLK_ID_BYTES). */
const MAX_SERIAL_BYTES = 20;

/**
 * Builds the `vm.create` body for one builder VM. No mode has a network device: the guest
 * reaches the registry through a hybrid-vsock tunnel (`kiln.registry_vsock`) and, in `egress`
 * mode, the host's filtering proxy through a second one (`kiln.egress_vsock`), so it has no
 * route of its own by construction.
 */
export function buildCloudHypervisorVmConfig(
  spec: VmSpec,
  paths: { vsockSocket: string },
): CloudHypervisorVmConfig {
  for (const disk of spec.disks) {
    if (Buffer.byteLength(disk.serial) > MAX_SERIAL_BYTES) {
      throw new VmError(
        'VMM_START_FAILED',
        `disk serial "${disk.serial}" exceeds ${MAX_SERIAL_BYTES} bytes`,
      );
    }
  }
  const kernelArgs = [
    'console=ttyS0',
    'panic=-1',
    `${CMDLINE_KEYS.channel}=vsock:${AGENT_VSOCK_PORT}`,
    `${CMDLINE_KEYS.net}=none`,
    `${CMDLINE_KEYS.registryVsock}=${REGISTRY_VSOCK_PORT}`,
    ...(spec.network.mode === 'egress' ? [`${CMDLINE_KEYS.egressVsock}=${EGRESS_VSOCK_PORT}`] : []),
    `${CMDLINE_KEYS.registry}=${VSOCK_GUEST_REGISTRY.host}:${VSOCK_GUEST_REGISTRY.port}`,
  ];
  const cmdline = [spec.cmdline.trim(), ...kernelArgs].filter((s) => s !== '').join(' ');

  return {
    payload: { kernel: spec.kernelPath, initramfs: spec.initramfsPath, cmdline },
    cpus: { boot_vcpus: spec.cpus, max_vcpus: spec.cpus },
    memory: { size: spec.memoryMb * 1024 * 1024 },
    disks: spec.disks.map((disk) => ({
      path: disk.path,
      readonly: disk.readOnly,
      serial: disk.serial,
      id: disk.serial,
    })),
    rng: { src: '/dev/urandom' },
    serial: { mode: 'File', file: spec.consoleLogPath },
    console: { mode: 'Off' },
    vsock: { cid: GUEST_CID, socket: paths.vsockSocket, id: 'kiln-vsock' },
  };
}
