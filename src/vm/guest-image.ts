import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { VmError } from './vm-error.js';

/** The builder guest image (docs/contracts.md#volumes): kernel, initramfs, read-only root disk. */
export interface GuestImage {
  kernelPath: string;
  initramfsPath: string;
  rootfsPath: string;
}

/** File names inside an image directory (scripts/build-image.sh writes them). */
export const GUEST_IMAGE_FILES = {
  kernel: 'vmlinuz',
  initramfs: 'initramfs.img',
  rootfs: 'rootfs.img',
} as const;

/** Resolves the image in `imageDir`; throws GUEST_IMAGE_MISSING naming what is absent. */
export async function resolveGuestImage(imageDir: string): Promise<GuestImage> {
  const image: GuestImage = {
    kernelPath: path.join(imageDir, GUEST_IMAGE_FILES.kernel),
    initramfsPath: path.join(imageDir, GUEST_IMAGE_FILES.initramfs),
    rootfsPath: path.join(imageDir, GUEST_IMAGE_FILES.rootfs),
  };
  const missing: string[] = [];
  for (const file of [image.kernelPath, image.initramfsPath, image.rootfsPath]) {
    try {
      await access(file, constants.R_OK);
    } catch {
      missing.push(file);
    }
  }
  if (missing.length > 0) {
    throw new VmError(
      'GUEST_IMAGE_MISSING',
      `guest image incomplete in ${imageDir}: missing ${missing.join(', ')} (run scripts/build-image.sh)`,
      { details: { missing } },
    );
  }
  return image;
}
