import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Pieces shared by the VMM probe boots (QEMU acceleration, Cloud Hypervisor usability,
 * docs/contracts.md#vmm-drivers): the kernel command line, what proves the guest reached init, and
 * the verdict cache in `<cacheDir>/probes/`, keyed by the VMM's version and the kernel's sha256.
 */

/** Kernel messages that prove the guest ran the kernel up to starting init. */
const BOOT_MARKERS = ['Run /init as init process', 'Freeing unused kernel image'];

/** No kiln.* keys: the guest init finds no agent channel and the probe is killed anyway. */
export const PROBE_CMDLINE = 'console=ttyS0 panic=-1 kiln.probe=1';

/** True once the guest's console output shows the kernel starting init. */
export function probeReachedInit(consoleText: string): boolean {
  return BOOT_MARKERS.some((marker) => consoleText.includes(marker));
}

/** Where the verdict for `vmm` with this VMM version and kernel is cached. */
export async function probeCacheFile(options: {
  cacheDir: string;
  vmm: string;
  version: string;
  kernelPath: string;
}): Promise<string> {
  const kernelSha = await sha256File(options.kernelPath);
  const key = createHash('sha256')
    .update(`${options.version}\n${kernelSha}`)
    .digest('hex')
    .slice(0, 32);
  return path.join(options.cacheDir, 'probes', `${options.vmm}-${key}.json`);
}

/** Writes a verdict to its cache file atomically (temp file, then rename). */
export async function writeProbeCache(file: string, verdict: object): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(verdict));
  await rename(tmp, file);
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
