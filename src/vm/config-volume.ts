import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { create as createTar } from 'tar';
import { BUILD_JOB_FILE, type BuildJob } from '../../common/protocol/build-job.js';

/**
 * Writes the config volume (docs/contracts.md#volumes): an uncompressed tar archive holding
 * `build.json`, the non-secret job description. Tar output is a whole number of 512-byte blocks, so
 * the file serves as a raw virtio-blk disk as is. Portable headers: no host uid/gid/user names.
 */
export async function writeConfigVolume(file: string, job: BuildJob): Promise<void> {
  const staging = await mkdtemp(path.join(path.dirname(file), '.config-'));
  try {
    await writeFile(path.join(staging, BUILD_JOB_FILE), `${JSON.stringify(job, null, 2)}\n`, {
      mode: 0o644,
    });
    await createTar({ file, cwd: staging, portable: true, gzip: false }, [BUILD_JOB_FILE]);
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
