import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, open, readFile, rm, stat, writeFile, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FlushingFileWriter } from '../../src/storage/flushing-file-writer.js';
import { openFilesUnder } from '../helpers/open-files.js';

const MiB = 1024 * 1024;

/** `bytes` as a stream of `chunk`-sized pieces. */
function chunked(bytes: Buffer, chunk: number): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += chunk) parts.push(bytes.subarray(i, i + chunk));
  return Readable.from(parts);
}

/**
 * The prototype every FileHandle shares (node does not export the class), to count or fail
 * its syncs: a disk error cannot be produced on this machine's disk on demand.
 */
async function fileHandlePrototype(dir: string): Promise<FileHandle> {
  const handle = await open(path.join(dir, 'probe'), 'w');
  await handle.close();
  return Object.getPrototypeOf(handle) as FileHandle;
}

describe('FlushingFileWriter', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-flushing-writer-'));
  });

  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates a new 0600 file with every byte in order, flushed in the background and fsynced before it finishes', async () => {
    const proto = await fileHandlePrototype(dir);
    const datasync = vi.spyOn(proto, 'datasync');
    const sync = vi.spyOn(proto, 'sync');
    const file = path.join(dir, 'source');
    const body = randomBytes(40 * MiB + 17);
    const hash = createHash('sha256');
    const sink = new FlushingFileWriter({
      file,
      flags: 'wx',
      flushEveryBytes: 8 * MiB,
      highWaterMark: MiB,
      hash,
      syncOnFinish: true,
    });
    await pipeline(chunked(body, 64 * 1024), sink);
    expect(sink.written).toBe(body.length);
    expect((await readFile(file)).equals(body)).toBe(true);
    expect(hash.digest('hex')).toBe(createHash('sha256').update(body).digest('hex'));
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(datasync.mock.calls.length).toBeGreaterThanOrEqual(2);
    expect(sync).toHaveBeenCalledTimes(1);
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('refuses to overwrite a file that is already there (wx)', async () => {
    const file = path.join(dir, 'source');
    await writeFile(file, 'earlier');
    const sink = new FlushingFileWriter({
      file,
      flags: 'wx',
      flushEveryBytes: MiB,
      highWaterMark: 1024,
    });
    await expect(pipeline(Readable.from([Buffer.from('x')]), sink)).rejects.toMatchObject({
      code: 'EEXIST',
    });
    expect(await readFile(file, 'utf8')).toBe('earlier');
  });

  it('fails with the limit error at the first byte past it, and closes the file', async () => {
    const file = path.join(dir, 'upload');
    await writeFile(file, '');
    const tooLong = new Error('too long');
    const sink = new FlushingFileWriter({
      file,
      flags: 'a',
      flushEveryBytes: MiB,
      highWaterMark: 1024,
      limit: { bytes: 100, error: () => tooLong },
    });
    await expect(pipeline(chunked(randomBytes(300), 60), sink)).rejects.toBe(tooLong);
    expect((await readFile(file)).length).toBeLessThanOrEqual(100);
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('fails the stream with a background flush error, which a later fsync might not report', async () => {
    const proto = await fileHandlePrototype(dir);
    const eio = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' });
    vi.spyOn(proto, 'datasync').mockRejectedValue(eio);
    const sync = vi.spyOn(proto, 'sync');
    const sink = new FlushingFileWriter({
      file: path.join(dir, 'source'),
      flags: 'wx',
      flushEveryBytes: MiB,
      highWaterMark: 64 * 1024,
      syncOnFinish: true,
    });
    await expect(pipeline(chunked(randomBytes(4 * MiB), 64 * 1024), sink)).rejects.toBe(eio);
    expect(sync).not.toHaveBeenCalled();
    expect(await openFilesUnder(dir)).toEqual([]);
  });

  it('closes the file only once the flush in flight has returned', async () => {
    const proto = await fileHandlePrototype(dir);
    let release: () => void = () => undefined;
    const flushed = new Promise<void>((resolve) => {
      release = resolve;
    });
    let started: () => void = () => undefined;
    const flushStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    vi.spyOn(proto, 'datasync').mockImplementation(() => {
      started();
      return flushed;
    });
    const file = path.join(dir, 'source');
    const sink = new FlushingFileWriter({
      file,
      flags: 'wx',
      flushEveryBytes: MiB,
      highWaterMark: 64 * 1024,
    });
    const done = pipeline(chunked(randomBytes(2 * MiB), 64 * 1024), sink);
    await flushStarted;
    // The whole body goes through while the flush hangs: the writes do not wait for it.
    await vi.waitFor(() => {
      expect(sink.written).toBe(2 * MiB);
    });
    expect(await openFilesUnder(dir)).toEqual([file]);
    release();
    await done;
    expect(await openFilesUnder(dir)).toEqual([]);
  });
});
