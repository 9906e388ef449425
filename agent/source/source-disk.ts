import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { BuildFailure } from '../../common/errors/build-failure.js';

/**
 * The guest's source disk (virtio serial `kiln-source`): the uploaded archive itself, maybe
 * zero-padded to whole sectors by the host (src/vm/source-disk.ts). Exactly `sizeBytes`
 * bytes count, as build.json says.
 */
export interface SourceDisk {
  devicePath: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * Hashes exactly `sizeBytes` bytes of the source disk and checks them against `sha256`
 * before anything is unpacked; too few bytes or a different digest is an `invalid_source`
 * failure. Returns the digest (hex).
 */
export async function verifySourceDisk(disk: SourceDisk): Promise<string> {
  const h = createHash('sha256');
  let seen = 0;
  if (disk.sizeBytes > 0) {
    for await (const chunk of readSourceDisk(disk)) {
      const buf = chunk as Buffer;
      h.update(buf);
      seen += buf.length;
    }
  }
  if (seen !== disk.sizeBytes) {
    throw new BuildFailure(
      'invalid_source',
      `the source disk holds ${seen} bytes, build.json says ${disk.sizeBytes}`,
    );
  }
  const digest = h.digest('hex');
  if (digest !== disk.sha256) {
    throw new BuildFailure(
      'invalid_source',
      `the source disk's sha256 is ${digest}, build.json says ${disk.sha256}`,
    );
  }
  return digest;
}

/** A stream of exactly the archive's bytes (the padding is never read). */
export function readSourceDisk(disk: SourceDisk): Readable {
  if (disk.sizeBytes === 0) throw new BuildFailure('invalid_source', 'the source is empty');
  return createReadStream(disk.devicePath, {
    start: 0,
    end: disk.sizeBytes - 1,
    highWaterMark: 1024 * 1024,
  });
}
