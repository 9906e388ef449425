import { createHash } from 'node:crypto';
import {
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { decompressSource, type SourceCompression } from '../../agent/source/decompress-stream.js';
import { readSourceDisk, verifySourceDisk } from '../../agent/source/source-disk.js';
import { unpackSource } from '../../agent/source/unpack-source.js';
import { isArchiveError } from '../../common/archive/archive-error.js';
import type { ArchiveLimits } from '../../common/archive/archive-limits.js';
import { isBuildFailure } from '../../common/errors/build-failure.js';
import { gzip, paxEntry, tarArchive, tarEntry, zstd } from '../helpers/tar-builder.js';

const LIMITS: ArchiveLimits = { maxUnpackedBytes: 1024 * 1024, maxEntries: 100, maxPathBytes: 255 };

let base: string;
let root: string;
let roots = 0;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'kiln-unpack-'));
  await freshRoot();
});

/** Every extraction gets an empty root of its own (the agent's contract). */
async function freshRoot(): Promise<void> {
  root = path.join(base, `root-${++roots}`);
  await mkdir(root);
}

afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

async function unpack(
  archive: Buffer,
  compression: SourceCompression = 'none',
  limits: ArchiveLimits = LIMITS,
): ReturnType<typeof unpackSource> {
  await freshRoot();
  const stream = decompressSource(
    Readable.from([archive]),
    compression,
    limits.maxUnpackedBytes + 1024 * 1024,
  );
  return unpackSource(stream, root, limits);
}

async function expectCode(p: Promise<unknown>, code: string): Promise<void> {
  const err: unknown = await p.then(
    () => new Error('expected a failure'),
    (e: unknown) => e,
  );
  expect(isArchiveError(err) || isBuildFailure(err) ? err.code : err).toBe(code);
}

/** Unpacks an uncompressed archive of `entries` and expects it refused with `code`. */
async function expectRefused(code: string, ...entries: Buffer[]): Promise<void> {
  await expectCode(unpack(tarArchive(...entries)), code);
}

/** Everything under `base` except the extraction root must be untouched. */
async function outsideRoot(): Promise<string[]> {
  return (await readdir(base)).filter((n) => !n.startsWith('root-'));
}

describe('unpackSource', () => {
  it('unpacks files, directories, symlinks and hardlinks with their content and modes', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'app/', type: '5', mode: 0o755 }),
      tarEntry({ name: 'app/run.sh', content: '#!/bin/sh\necho hi\n', mode: 0o4755 }),
      tarEntry({ name: 'app/link', type: '2', linkName: 'run.sh' }),
      tarEntry({ name: 'app/hard', type: '1', linkName: 'app/run.sh' }),
      tarEntry({ name: 'deep/a/b/c.txt', content: 'c' }),
    );
    const r = await unpack(archive);
    expect(await readFile(path.join(root, 'app/run.sh'), 'utf8')).toBe('#!/bin/sh\necho hi\n');
    expect(await readlink(path.join(root, 'app/link'))).toBe('run.sh');
    expect((await stat(path.join(root, 'app/hard'))).ino).toBe(
      (await stat(path.join(root, 'app/run.sh'))).ino,
    );
    // setuid is never kept
    expect((await stat(path.join(root, 'app/run.sh'))).mode & 0o7777).toBe(0o755);
    expect(r.entries.map((e) => e.path)).toEqual([
      'app',
      'app/hard',
      'app/link',
      'app/run.sh',
      'deep',
      'deep/a',
      'deep/a/b',
      'deep/a/b/c.txt',
    ]);
    const file = r.entries.find((e) => e.path === 'app/run.sh');
    expect(file).toMatchObject({
      type: 'file',
      sha256: createHash('sha256').update('#!/bin/sh\necho hi\n').digest('hex'),
    });
    expect(r.unpackedBytes).toBe(19);
  });

  it('gives the same tree sha256 whatever the entry order, and a different one for other content', async () => {
    const a = tarEntry({ name: 'x/one', content: '1' });
    const b = tarEntry({ name: 'x/two', content: '2' });
    const first = await unpack(tarArchive(a, b));
    const second = await unpack(tarArchive(b, a));
    expect(second.treeSha256).toBe(first.treeSha256);
    const third = await unpack(tarArchive(a, tarEntry({ name: 'x/two', content: '3' })));
    expect(third.treeSha256).not.toBe(first.treeSha256);
  });

  it('reads pax long names and GNU-style long content', async () => {
    const long = `${'d'.repeat(120)}/${'f'.repeat(100)}`;
    const r = await unpack(
      tarArchive(paxEntry({ path: long }), tarEntry({ name: 'ignored', content: 'x' })),
    );
    expect(r.entries.some((e) => e.path === long)).toBe(true);
    expect(await readFile(path.join(root, long), 'utf8')).toBe('x');
  });

  it('unpacks gzip and zstd archives', async () => {
    const archive = tarArchive(tarEntry({ name: 'f.txt', content: 'compressed' }));
    await unpack(gzip(archive), 'gzip');
    expect(await readFile(path.join(root, 'f.txt'), 'utf8')).toBe('compressed');
    await unpack(zstd(archive), 'zstd');
    expect(await readFile(path.join(root, 'f.txt'), 'utf8')).toBe('compressed');
  });

  it('rejects a ../ name with SOURCE_UNSAFE_PATH and writes nothing outside the root', async () => {
    await expectRefused('SOURCE_UNSAFE_PATH', tarEntry({ name: '../escape.txt', content: 'x' }));
    await expectRefused(
      'SOURCE_UNSAFE_PATH',
      tarEntry({ name: 'a/../../escape.txt', content: 'x' }),
    );
    expect(await outsideRoot()).toEqual([]);
  });

  it('rejects an absolute name with SOURCE_UNSAFE_PATH', async () => {
    await expectRefused('SOURCE_UNSAFE_PATH', tarEntry({ name: `${base}/abs.txt`, content: 'x' }));
    expect(await outsideRoot()).toEqual([]);
  });

  it('refuses to write through a symlink, even one pointing inside the root', async () => {
    await expectRefused(
      'SOURCE_UNSAFE_PATH',
      tarEntry({ name: 'sub/', type: '5' }),
      tarEntry({ name: 'ln', type: '2', linkName: 'sub' }),
      tarEntry({ name: 'ln/file', content: 'through' }),
    );
    expect(await readdir(root, { recursive: true })).not.toContain(path.join('sub', 'file'));
  });

  it('rejects symlinks that point outside the root, directly or through another symlink', async () => {
    await expectRefused('SOURCE_BAD_LINK', tarEntry({ name: 'evil', type: '2', linkName: base }));
    await expectRefused(
      'SOURCE_BAD_LINK',
      tarEntry({ name: 'a/evil', type: '2', linkName: '../..' }),
    );
    // Lexically "b -> a/.." stays inside; with a -> . it resolves to the root's parent.
    await expectRefused(
      'SOURCE_BAD_LINK',
      tarEntry({ name: 'b', type: '2', linkName: 'a/..' }),
      tarEntry({ name: 'a', type: '2', linkName: '.' }),
    );
  });

  it('rejects a symlink to a file outside the root and leaves that file untouched', async () => {
    await writeFile(path.join(base, 'target.txt'), 'original');
    await expectRefused(
      'SOURCE_BAD_LINK',
      tarEntry({ name: 'x', type: '2', linkName: '../target.txt' }),
    );
    expect(await readFile(path.join(base, 'target.txt'), 'utf8')).toBe('original');
  });

  it('replaces an earlier symlink with a later file of the same name instead of writing through it', async () => {
    await unpack(
      tarArchive(
        tarEntry({ name: 'inside.txt', content: 'orig' }),
        tarEntry({ name: 'x', type: '2', linkName: 'inside.txt' }),
        tarEntry({ name: 'x', content: 'new' }),
      ),
    );
    expect(await readFile(path.join(root, 'inside.txt'), 'utf8')).toBe('orig');
    expect(await readFile(path.join(root, 'x'), 'utf8')).toBe('new');
    expect((await lstat(path.join(root, 'x'))).isFile()).toBe(true);
  });

  it('accepts hardlinks only to an earlier regular file inside the root', async () => {
    await expectRefused(
      'SOURCE_UNSAFE_PATH',
      tarEntry({ name: 'h', type: '1', linkName: '../../etc/passwd' }),
    );
    await expectRefused(
      'SOURCE_UNSAFE_PATH',
      tarEntry({ name: 'h', type: '1', linkName: '/etc/passwd' }),
    );
    await expectRefused(
      'SOURCE_BAD_LINK',
      tarEntry({ name: 'h', type: '1', linkName: 'later' }),
      tarEntry({ name: 'later', content: 'x' }),
    );
    await expectRefused(
      'SOURCE_BAD_LINK',
      tarEntry({ name: 's', type: '2', linkName: 'x' }),
      tarEntry({ name: 'h', type: '1', linkName: 's' }),
    );
  });

  it.each([
    ['character device', '3'],
    ['block device', '4'],
    ['fifo', '6'],
    ['GNU sparse file', 'S'],
  ])('rejects a %s with SOURCE_FORBIDDEN_ENTRY', async (_label, type) => {
    await expectCode(unpack(tarArchive(tarEntry({ name: 'dev', type }))), 'SOURCE_FORBIDDEN_ENTRY');
  });

  it('stops a zip bomb at maxUnpackedBytes before writing the file', async () => {
    const bomb = gzip(
      tarArchive(tarEntry({ name: 'zeros', content: Buffer.alloc(8 * 1024 * 1024) })),
    );
    expect(bomb.length).toBeLessThan(64 * 1024);
    await expectCode(unpack(bomb, 'gzip'), 'SOURCE_UNPACKED_TOO_LARGE');
    expect(await readdir(root)).toEqual([]);
  });

  it('counts unpacked bytes across files', async () => {
    const half = Buffer.alloc(600 * 1024, 1);
    await expectCode(
      unpack(
        tarArchive(tarEntry({ name: 'a', content: half }), tarEntry({ name: 'b', content: half })),
      ),
      'SOURCE_UNPACKED_TOO_LARGE',
    );
  });

  it('stops decompression itself at its output limit, whatever the tar headers say', async () => {
    await freshRoot();
    const archive = gzip(
      tarArchive(tarEntry({ name: 'big', content: Buffer.alloc(2 * 1024 * 1024) })),
    );
    const stream = decompressSource(Readable.from([archive]), 'gzip', 1024 * 1024);
    await expectCode(
      unpackSource(stream, root, { ...LIMITS, maxUnpackedBytes: 10 * 1024 * 1024 }),
      'SOURCE_UNPACKED_TOO_LARGE',
    );
  });

  it('rejects more entries than maxEntries', async () => {
    const entries = Array.from({ length: 6 }, (_, i) => tarEntry({ name: `f${i}`, content: 'x' }));
    await expectCode(
      unpack(tarArchive(...entries), 'none', { ...LIMITS, maxEntries: 5 }),
      'SOURCE_TOO_MANY_ENTRIES',
    );
  });

  it('rejects a path longer than maxPathBytes', async () => {
    await expectRefused(
      'SOURCE_PATH_TOO_LONG',
      paxEntry({ path: 'p'.repeat(300) }),
      tarEntry({ name: 'x', content: '' }),
    );
  });

  it('reports truncated gzip, zstd and tar streams as SOURCE_CORRUPT', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'f', content: Buffer.alloc(200 * 1024, 7) }),
      tarEntry({ name: 'g', content: 'x' }),
    );
    const gz = gzip(archive);
    await expectCode(unpack(gz.subarray(0, Math.floor(gz.length / 2)), 'gzip'), 'SOURCE_CORRUPT');
    const zs = zstd(archive);
    await expectCode(unpack(zs.subarray(0, Math.floor(zs.length / 2)), 'zstd'), 'SOURCE_CORRUPT');
    await expectCode(unpack(archive.subarray(0, 100 * 1024)), 'SOURCE_CORRUPT');
  });

  it('rejects data that is not a tar archive', async () => {
    await expectCode(
      unpack(Buffer.from('this is not a tar archive\n'.repeat(40))),
      'SOURCE_NOT_ARCHIVE',
    );
    await expectCode(unpack(Buffer.alloc(0)), 'SOURCE_NOT_ARCHIVE');
  });

  it('rejects a corrupted header checksum after the first entry', async () => {
    const second = tarEntry({ name: 'g', content: 'x' });
    second[0] = 'h'.charCodeAt(0);
    await expectRefused('SOURCE_CORRUPT', tarEntry({ name: 'f', content: 'x' }), second);
  });
});

describe('source disk', () => {
  it('reads exactly sizeBytes of a zero-padded volume and checks its sha256', async () => {
    const archive = gzip(tarArchive(tarEntry({ name: 'f', content: 'padded' })));
    const device = path.join(base, 'source.img');
    const padded = Buffer.concat([archive, Buffer.alloc(512 - (archive.length % 512))]);
    await writeFile(device, padded);
    const sha256 = createHash('sha256').update(archive).digest('hex');
    const volume = { devicePath: device, sizeBytes: archive.length, sha256 };
    expect(await verifySourceDisk(volume)).toBe(sha256);
    const r = await unpackSource(
      decompressSource(readSourceDisk(volume), 'gzip', LIMITS.maxUnpackedBytes),
      root,
      LIMITS,
    );
    expect(r.entries.map((e) => e.path)).toEqual(['f']);
  });

  it('fails as invalid_source when the digest differs', async () => {
    const device = path.join(base, 'source.img');
    await writeFile(device, 'abc');
    await expectCode(
      verifySourceDisk({ devicePath: device, sizeBytes: 3, sha256: 'a'.repeat(64) }),
      'invalid_source',
    );
  });

  it('fails as invalid_source when the volume is shorter than sizeBytes', async () => {
    const device = path.join(base, 'source.img');
    await writeFile(device, 'abc');
    const sha256 = createHash('sha256').update('abc').digest('hex');
    await expectCode(
      verifySourceDisk({ devicePath: device, sizeBytes: 10, sha256 }),
      'invalid_source',
    );
  });
});
