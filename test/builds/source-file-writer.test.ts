import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SourceFileWriter } from '../../src/builds/source-file-writer.js';

describe('SourceFileWriter', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-source-writer-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes every chunk in order to a new 0600 file while syncing in the background', async () => {
    const chunks = Array.from({ length: 64 }, (_, i) => randomBytes(1000 + i * 37));
    const file = path.join(dir, 'source');
    // 4 KiB between syncs: many background fdatasyncs overlap the writes.
    await pipeline(
      Readable.from(chunks),
      new SourceFileWriter(file, { syncEveryBytes: 4096, highWaterMark: 16 * 1024 }),
    );
    expect(Buffer.compare(await readFile(file), Buffer.concat(chunks))).toBe(0);
    expect((await stat(file)).mode & 0o777).toBe(0o600);
  });

  it('refuses a file that already exists and leaves it as it was', async () => {
    const file = path.join(dir, 'source');
    await writeFile(file, 'before');
    await expect(
      pipeline(
        Readable.from([Buffer.from('after')]),
        new SourceFileWriter(file, { syncEveryBytes: 1024, highWaterMark: 1024 }),
      ),
    ).rejects.toMatchObject({ code: 'EEXIST' });
    expect(await readFile(file, 'utf8')).toBe('before');
  });

  it('closes the file when the stream fails half-way, keeping what was written', async () => {
    const file = path.join(dir, 'source');
    const writer = new SourceFileWriter(file, { syncEveryBytes: 8, highWaterMark: 1024 });
    async function* failing(): AsyncGenerator<Buffer> {
      yield Buffer.from('first part ');
      await new Promise((resolve) => setTimeout(resolve, 10));
      throw new Error('client went away');
    }
    const closed = new Promise((resolve) => writer.once('close', resolve));
    await expect(pipeline(failing(), writer)).rejects.toThrow('client went away');
    expect(writer.destroyed).toBe(true);
    await closed;
    expect(await readFile(file, 'utf8')).toBe('first part ');
  });

  it('rejects a sync interval that is not positive at construction', () => {
    expect(
      () => new SourceFileWriter(path.join(dir, 'x'), { syncEveryBytes: 0, highWaterMark: 1 }),
    ).toThrow('syncEveryBytes');
  });
});
