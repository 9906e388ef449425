import type { Logger } from 'pino';
import { probeCloudHypervisor } from './cloud-hypervisor/cloud-hypervisor-probe.js';
import { CloudHypervisorVmm } from './cloud-hypervisor/cloud-hypervisor-vmm.js';
import { resolveGuestImage } from './guest-image.js';
import { probeQemuAccel, readQemuVersion } from './qemu/qemu-accel-probe.js';
import { DEFAULT_QEMU_BINARY, QemuVmm } from './qemu/qemu-vmm.js';
import { VmError } from './vm-error.js';
import type { Vmm } from './vmm.js';
import type { Config } from '../config/config.js';

/** The VMM chosen at start and why (logged once). */
export interface VmmSelection {
  vmm: Vmm;
  reason: string;
}

/**
 * Picks the VMM per `config.vm.vmm` (docs/contracts.md#vmm-drivers): `auto` takes Cloud Hypervisor
 * when it is installed and a KVM boot works, else QEMU with KVM when a probe boot succeeds, else
 * QEMU with TCG. An explicit choice that cannot work fails with VMM_UNAVAILABLE, so the daemon
 * stops at start rather than failing every build.
 */
export async function selectVmm(options: {
  vm: Config['vm'];
  logger: Logger;
}): Promise<VmmSelection> {
  const { vm, logger } = options;
  if (vm.vmm === 'cloud-hypervisor' || vm.vmm === 'auto') {
    const probe = await probeCloudHypervisor({
      binary: vm.cloudHypervisorBinary,
      imageDir: vm.imageDir,
      cacheDir: vm.cacheDir,
      logger,
    });
    if (probe.usable) {
      return {
        vmm: new CloudHypervisorVmm({
          binary: probe.binary,
          logger,
        }),
        reason:
          vm.vmm === 'auto'
            ? 'auto: Cloud Hypervisor is installed and boots under KVM'
            : 'configured: cloud-hypervisor',
      };
    }
    if (vm.vmm === 'cloud-hypervisor') {
      throw new VmError('VMM_UNAVAILABLE', `Cloud Hypervisor is not usable: ${probe.reason}`);
    }
    logger.info({ reason: probe.reason }, 'Cloud Hypervisor not usable, trying QEMU');
  }
  return selectQemu(vm, logger);
}

async function selectQemu(vm: Config['vm'], logger: Logger): Promise<VmmSelection> {
  const binary = vm.qemuBinary ?? DEFAULT_QEMU_BINARY;
  try {
    await readQemuVersion(binary);
  } catch (err) {
    throw new VmError('VMM_UNAVAILABLE', `QEMU (${binary}) cannot run: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const prefix = vm.vmm === 'auto' ? 'auto' : 'configured: qemu';
  let image;
  try {
    image = await resolveGuestImage(vm.imageDir);
  } catch (err) {
    // Without a kernel there is nothing to probe KVM with; TCG always works. Not cached.
    logger.warn({ err }, 'no guest image to probe KVM with; using QEMU with TCG');
    return {
      vmm: new QemuVmm({ binary, accel: 'tcg', logger }),
      reason: `${prefix}: QEMU with TCG (no guest image to probe KVM with)`,
    };
  }
  const probe = await probeQemuAccel({
    binary,
    kernelPath: image.kernelPath,
    initramfsPath: image.initramfsPath,
    cacheDir: vm.cacheDir,
    logger,
  });
  return {
    vmm: new QemuVmm({ binary, accel: probe.accel, logger }),
    reason: `${prefix}: QEMU with ${probe.accel.toUpperCase()} (${probe.reason})`,
  };
}
