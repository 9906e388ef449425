import { type FileHandle, open } from 'node:fs/promises';
import { TarDecoder } from '../../common/archive/tar-decoder.js';
import { isTarFormatError } from '../../common/archive/tar-format-error.js';
import { TAR_BLOCK } from '../../common/archive/tar-header.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import { BUILD_JOB_FILE, buildJobSchema, type BuildJob } from '../../common/protocol/build-job.js';

/** Largest build.json the agent accepts. */
const MAX_BUILD_JSON_BYTES = 1024 * 1024;

/** The config volume is read in pieces of this size, and never beyond build.json's end. */
const READ_BYTES = 64 * 1024;

/** Bytes read at most: build.json plus room for the headers before it. */
const MAX_READ_BYTES = MAX_BUILD_JSON_BYTES + 64 * 1024;

/**
 * Reads build.json from the config volume: an uncompressed tar holding one regular file
 * named `build.json` (see {@link BuildJob}), decoded with the same tar decoder the source
 * archive goes through. The volume is a disk, so whatever follows the archive (padding to a
 * sector) is never decoded: reading stops at build.json or at the end-of-archive marker.
 */
export async function readConfigVolume(devicePath: string): Promise<BuildJob> {
  const handle = await open(devicePath, 'r');
  const decoder = new TarDecoder(64 * 1024);
  let body: Buffer[] | null = null;
  let wanted = 0;
  let got = 0;
  try {
    // Block by block, so decoding stops at the end-of-archive marker: the disk beyond it
    // (sector padding, or anything) is none of the archive's business.
    read: for await (const block of blocks(handle)) {
      for (const event of decoder.push(block)) {
        if (event.kind === 'end') break read;
        if (event.kind === 'entry') {
          const { header } = event;
          const name = header.name.toString('utf8').replace(/^\.\//, '');
          if (name !== BUILD_JOB_FILE || (header.type !== '0' && header.type !== '\0')) continue;
          if (header.size > MAX_BUILD_JSON_BYTES) {
            throw new BuildFailure('internal', `build.json is ${header.size} bytes`);
          }
          body = [];
          wanted = header.size;
          if (wanted === 0) return parseBuildJob('');
          continue;
        }
        if (body === null) continue;
        body.push(Buffer.from(event.chunk));
        got += event.chunk.length;
        if (got === wanted) return parseBuildJob(Buffer.concat(body).toString('utf8'));
      }
    }
  } catch (err) {
    if (isTarFormatError(err)) {
      throw new BuildFailure('internal', `the config volume is not a valid tar: ${err.message}`, {
        cause: err,
      });
    }
    throw err;
  } finally {
    await handle.close();
  }
  throw new BuildFailure(
    'internal',
    body === null ? 'the config volume holds no build.json' : 'build.json is truncated',
  );
}

/** The volume's first MAX_READ_BYTES, one tar block at a time, read in larger pieces. */
async function* blocks(handle: FileHandle): AsyncGenerator<Buffer> {
  for (let offset = 0; offset < MAX_READ_BYTES; offset += READ_BYTES) {
    const chunk = Buffer.alloc(READ_BYTES);
    const { bytesRead } = await handle.read(chunk, 0, READ_BYTES, offset);
    for (let at = 0; at < bytesRead; at += TAR_BLOCK) {
      yield chunk.subarray(at, Math.min(at + TAR_BLOCK, bytesRead));
    }
    if (bytesRead < READ_BYTES) return;
  }
}

/** Parses and validates build.json text. */
function parseBuildJob(text: string): BuildJob {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BuildFailure('internal', `build.json is not JSON: ${(err as Error).message}`);
  }
  const r = buildJobSchema.safeParse(value);
  if (!r.success) {
    throw new BuildFailure(
      'internal',
      `build.json is invalid: ${r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  return r.data;
}
