import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { envBytes, envInt, envOptionalString } from './env-schema.js';

const GiB = 1024 ** 3;

/** Which VMM to use and how builder VMs are shaped: the KILN_* variables and `Config['vm']`. */
export const vmConfigSchema = z
  .object({
    KILN_VMM: z
      .enum(['auto', 'qemu', 'cloud-hypervisor'])
      .optional()
      .transform((v) => v ?? 'auto'),
    /** Directory with the guest image (vmlinuz, initramfs, rootfs); default: the image cache's `current`. */
    KILN_IMAGE_DIR: envOptionalString(),
    /** Cache for built guest images and probe results; default ${XDG_CACHE_HOME:-~/.cache}/kiln. */
    KILN_CACHE_DIR: envOptionalString(),
    KILN_QEMU_BINARY: envOptionalString(),
    KILN_CLOUD_HYPERVISOR_BINARY: envOptionalString(),
    KILN_BOOT_TIMEOUT_SECONDS: envInt(60, 5, 3600),
    KILN_SCRATCH_BYTES: envBytes(20 * GiB, 256 * 1024 ** 2, 4096 * GiB),
    // The default cache directory follows the XDG base directory specification.
    HOME: envOptionalString(),
    XDG_CACHE_HOME: envOptionalString(),
  })
  .transform((env) => {
    const cacheDir = path.resolve(
      env.KILN_CACHE_DIR ??
        path.join(env.XDG_CACHE_HOME ?? path.join(env.HOME ?? os.homedir(), '.cache'), 'kiln'),
    );
    return {
      vmm: env.KILN_VMM,
      imageDir: path.resolve(env.KILN_IMAGE_DIR ?? path.join(cacheDir, 'images', 'current')),
      cacheDir,
      qemuBinary: env.KILN_QEMU_BINARY,
      cloudHypervisorBinary: env.KILN_CLOUD_HYPERVISOR_BINARY,
      bootTimeoutSeconds: env.KILN_BOOT_TIMEOUT_SECONDS,
      scratchBytes: env.KILN_SCRATCH_BYTES,
    };
  });
