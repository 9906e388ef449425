import { describe, expect, it } from 'vitest';
import { TarInspector } from '../../src/builds/tar-inspector.js';
import { paxEntry, tarArchive, tarEntry } from '../helpers/tar-builder.js';

const limits = { maxUnpackedBytes: 1 << 20, maxEntries: 100, maxPathBytes: 200 };

function inspect(tar: Buffer, chunk = 97) {
  const inspector = new TarInspector(limits);
  for (let i = 0; i < tar.length; i += chunk) inspector.push(tar.subarray(i, i + chunk));
  return inspector.end();
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('TarInspector', () => {
  it('counts entries and unpacked bytes across any chunking', () => {
    const tar = tarArchive(
      { name: 'a/', type: '5' },
      { name: 'a/f', content: 'x'.repeat(1000) },
      { name: './a/g', content: '' },
    );
    expect(inspect(tar, 1)).toEqual({ entries: 3, unpackedBytes: 1000 });
    expect(inspect(tar, 4096)).toEqual({ entries: 3, unpackedBytes: 1000 });
  });

  it('applies pax path and GNU long names to the next entry only', () => {
    const long = `${'d/'.repeat(70)}f`;
    const ok = tarArchive(
      paxEntry({ path: long }),
      { name: 'short', content: 'x' },
      { name: 'next', content: 'y' },
    );
    expect(inspect(ok).entries).toBe(2);
    const escape = tarArchive(paxEntry({ path: '../../etc/passwd' }), {
      name: 'innocent',
      content: 'x',
    });
    expect(codeOf(() => inspect(escape))).toBe('SOURCE_UNSAFE_PATH');
    const gnu = tarArchive(
      { name: '././@LongLink', type: 'L', content: '/abs/path\0' },
      { name: 'x', content: '' },
    );
    expect(codeOf(() => inspect(gnu))).toBe('SOURCE_UNSAFE_PATH');
  });

  it('uses a pax size override to find the next header', () => {
    const data = 'z'.repeat(600);
    const tar = tarArchive(
      paxEntry({ size: '600' }),
      { name: 'f', content: data, size: 0 },
      { name: 'g', content: '' },
    );
    expect(inspect(tar)).toEqual({ entries: 2, unpackedBytes: 600 });
  });

  it('refuses data after the end-of-archive marker and a missing marker', () => {
    const tar = tarArchive({ name: 'f', content: 'x' });
    expect(codeOf(() => inspect(Buffer.concat([tar, Buffer.from('trailing junk')])))).toBe(
      'SOURCE_CORRUPT',
    );
    expect(codeOf(() => inspect(tarEntry({ name: 'f', content: 'x' })))).toBe('SOURCE_CORRUPT');
  });

  it('refuses a header with a bad checksum', () => {
    const tar = tarArchive({ name: 'f', content: 'x' }, { name: 'g', content: 'y' });
    tar[1024] = 0x41;
    expect(codeOf(() => inspect(tar))).toBe('SOURCE_CORRUPT');
  });

  it('refuses symlinks that are empty or point outside the root, as the guest does', () => {
    expect(inspect(tarArchive({ name: 'l', type: '2', linkName: 'f' })).entries).toBe(1);
    expect(
      codeOf(() => inspect(tarArchive({ name: 'l', type: '2', linkName: '/etc/passwd' }))),
    ).toBe('SOURCE_BAD_LINK');
    expect(codeOf(() => inspect(tarArchive({ name: 'l', type: '2', linkName: '../x' })))).toBe(
      'SOURCE_BAD_LINK',
    );
    expect(codeOf(() => inspect(tarArchive({ name: 'l', type: '2', linkName: '' })))).toBe(
      'SOURCE_BAD_LINK',
    );
  });

  it('accepts hardlinks to earlier files only, never to directories', () => {
    const ok = tarArchive({ name: 'f', content: 'x' }, { name: 'h', type: '1', linkName: './f' });
    expect(inspect(ok).entries).toBe(2);
    const dir = tarArchive({ name: 'd/', type: '5' }, { name: 'h', type: '1', linkName: 'd' });
    expect(codeOf(() => inspect(dir))).toBe('SOURCE_BAD_LINK');
  });

  it('refuses an empty archive as not an archive', () => {
    expect(codeOf(() => inspect(Buffer.alloc(1024)))).toBe('SOURCE_NOT_ARCHIVE');
  });
});

describe('TarInspector symlink resolution', () => {
  it('follows at most 40 symlinks per resolution, so a doubling chain costs linear work', () => {
    // a1 -> a0/../a0, a2 -> a1/../a1, …: resolving a30 naively would follow 2^30 symlinks.
    const links = Array.from({ length: 30 }, (_, i) => ({
      name: `a${i + 1}`,
      type: '2',
      linkName: `a${i}/../a${i}`,
    }));
    const tar = tarArchive({ name: 'a0/', type: '5' }, ...links);
    expect(codeOf(() => inspect(tar))).toBe('SOURCE_BAD_LINK');
  });
});
