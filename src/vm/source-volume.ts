import { open } from 'node:fs/promises';

/**
 * Makes the uploaded archive usable as the source volume (docs/contracts.md#volumes): virtio-blk
 * exposes whole 512-byte sectors, so a file whose size is not a multiple of 512 is zero-padded at
 * its end, in place. The archive is never unpacked or rewritten otherwise; the guest reads exactly
 * `sizeBytes` bytes and checks their sha256, so the padding is invisible to it and padding twice is
 * harmless. Returns the volume's size.
 */
export async function prepareSourceVolume(file: string, sizeBytes: number): Promise<number> {
  const handle = await open(file, 'r+');
  try {
    const { size } = await handle.stat();
    if (size < sizeBytes) {
      throw new Error(
        `source archive ${file} is ${size} bytes, shorter than its recorded ${sizeBytes}`,
      );
    }
    const padded = Math.max(512, Math.ceil(size / 512) * 512);
    if (padded !== size) await handle.truncate(padded);
    return padded;
  } finally {
    await handle.close();
  }
}
