import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OciError } from '../../src/registry/oci-error.js';
import { UploadFileWriter } from '../../src/registry/upload-file-writer.js';
import { openFilesUnder } from '../helpers/open-files.js';

const MiB = 1024 * 1024;

/** `bytes` as a stream of `chunk`-sized pieces. */
function chunked(bytes: Buffer, chunk: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts);
}

describe('UploadFileWriter', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-upload-writer-'));
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('appends every byte in order, hashes them, and closes the file past its background flushes', async () => {
    const file = path.join(dir, 'upload');
    const head = randomBytes(1000);
    await writeFile(file, head);
    // Past two flush thresholds, in socket-sized chunks.
    const body = randomBytes(40 * MiB + 17);
    const hash = createHash('sha256');
    const sink = new UploadFileWriter({ file, hash, highWaterMark: 4 * MiB });
    await pipeline(chunked(body, 64 * 1024), sink);
    expect(sink.written).toBe(body.length);
    expect((await readFile(file)).equals(Buffer.concat([head, body]))).toBe(true);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('fails with 416 at the first byte past maxBytes, and closes the file', async () => {
    const file = path.join(dir, 'upload');
    await writeFile(file, '');
    const sink = new UploadFileWriter({ file, maxBytes: 100, highWaterMark: 1024 });
    const failure = pipeline(chunked(randomBytes(300), 60), sink);
    await expect(failure).rejects.toBeInstanceOf(OciError);
    await expect(failure).rejects.toMatchObject({ status: 416 });
    expect((await readFile(file)).length).toBeLessThanOrEqual(100);
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('fails when the upload file cannot be opened', async () => {
    const sink = new UploadFileWriter({
      file: path.join(dir, 'missing', 'upload'),
      highWaterMark: 1024,
    });
    await expect(pipeline(Readable.from([Buffer.from('x')]), sink)).rejects.toMatchObject({
      code: 'ENOENT',
    });
  });
});
