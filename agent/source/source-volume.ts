import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { BuildFailure } from '../../common/errors/build-failure.js';

/**
 * The source volume is the uploaded archive itself, maybe zero-padded to whole sectors
 * (common/protocol/build-job.ts): exactly `sizeBytes` bytes count.
 */
export interface SourceVolume {
  devicePath: string;
  sizeBytes: number;
  sha256: string;
}

/**
 * Hashes exactly `sizeBytes` bytes of the source volume and checks them against `sha256`
 * before anything is unpacked; too few bytes or a different digest is an `invalid_source`
 * failure. Returns the digest (hex).
 */
export async function verifySourceVolume(volume: SourceVolume): Promise<string> {
  const h = createHash('sha256');
  let seen = 0;
  if (volume.sizeBytes > 0) {
    for await (const chunk of openSourceVolume(volume)) {
      const buf = chunk as Buffer;
      h.update(buf);
      seen += buf.length;
    }
  }
  if (seen !== volume.sizeBytes) {
    throw new BuildFailure(
      'invalid_source',
      `the source volume holds ${seen} bytes, build.json says ${volume.sizeBytes}`,
    );
  }
  const digest = h.digest('hex');
  if (digest !== volume.sha256) {
    throw new BuildFailure(
      'invalid_source',
      `the source volume's sha256 is ${digest}, build.json says ${volume.sha256}`,
    );
  }
  return digest;
}

/** A stream of exactly the archive's bytes (the padding is never read). */
export function openSourceVolume(volume: SourceVolume): Readable {
  if (volume.sizeBytes === 0) throw new BuildFailure('invalid_source', 'the source is empty');
  return createReadStream(volume.devicePath, {
    start: 0,
    end: volume.sizeBytes - 1,
    highWaterMark: 1024 * 1024,
  });
}
