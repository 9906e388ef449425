import { describe, expect, it } from 'vitest';
import { TarInspector } from '../../src/builds/tar-inspector.js';
import { makeTar, type TarEntry } from '../helpers/api-tar.js';

const limits = { maxUnpackedBytes: 1 << 20, maxEntries: 100, maxPathBytes: 200 };

function inspect(tar: Buffer, chunk = 97) {
  const inspector = new TarInspector(limits);
  for (let i = 0; i < tar.length; i += chunk) inspector.push(tar.subarray(i, i + chunk));
  return inspector.end();
}

function pax(records: Record<string, string>): TarEntry {
  let body = '';
  for (const [k, v] of Object.entries(records)) {
    const rest = ` ${k}=${v}\n`;
    let len = rest.length + 1;
    while (`${len}${rest}`.length !== len) len += 1;
    body += `${len}${rest}`;
  }
  return { name: 'PaxHeader', type: 'x', data: body };
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
    const tar = makeTar([
      { name: 'a/', type: '5' },
      { name: 'a/f', data: 'x'.repeat(1000) },
      { name: './a/g', data: '' },
    ]);
    expect(inspect(tar, 1)).toEqual({ entries: 3, unpackedBytes: 1000 });
    expect(inspect(tar, 4096)).toEqual({ entries: 3, unpackedBytes: 1000 });
  });

  it('applies pax path and GNU long names to the next entry only', () => {
    const long = `${'d/'.repeat(70)}f`;
    const ok = makeTar([
      pax({ path: long }),
      { name: 'short', data: 'x' },
      { name: 'next', data: 'y' },
    ]);
    expect(inspect(ok).entries).toBe(2);
    const escape = makeTar([pax({ path: '../../etc/passwd' }), { name: 'innocent', data: 'x' }]);
    expect(codeOf(() => inspect(escape))).toBe('SOURCE_UNSAFE_PATH');
    const gnu = makeTar([
      { name: '././@LongLink', type: 'L', data: '/abs/path\0' },
      { name: 'x', data: '' },
    ]);
    expect(codeOf(() => inspect(gnu))).toBe('SOURCE_UNSAFE_PATH');
  });

  it('uses a pax size override to find the next header', () => {
    const data = 'z'.repeat(600);
    const tar = makeTar([
      pax({ size: '600' }),
      { name: 'f', data, size: 0 },
      { name: 'g', data: '' },
    ]);
    expect(inspect(tar)).toEqual({ entries: 2, unpackedBytes: 600 });
  });

  it('refuses data after the end-of-archive marker and a missing marker', () => {
    const tar = makeTar([{ name: 'f', data: 'x' }]);
    expect(codeOf(() => inspect(Buffer.concat([tar, Buffer.from('trailing junk')])))).toBe(
      'SOURCE_CORRUPT',
    );
    expect(codeOf(() => inspect(makeTar([{ name: 'f', data: 'x' }], { end: false })))).toBe(
      'SOURCE_CORRUPT',
    );
  });

  it('refuses a header with a bad checksum', () => {
    const tar = makeTar([
      { name: 'f', data: 'x' },
      { name: 'g', data: 'y' },
    ]);
    tar[1024] = 0x41;
    expect(codeOf(() => inspect(tar))).toBe('SOURCE_CORRUPT');
  });

  it('refuses symlinks that are empty or point outside the root, as the guest does', () => {
    expect(inspect(makeTar([{ name: 'l', type: '2', linkname: 'f' }])).entries).toBe(1);
    expect(
      codeOf(() => inspect(makeTar([{ name: 'l', type: '2', linkname: '/etc/passwd' }]))),
    ).toBe('SOURCE_BAD_LINK');
    expect(codeOf(() => inspect(makeTar([{ name: 'l', type: '2', linkname: '../x' }])))).toBe(
      'SOURCE_BAD_LINK',
    );
    expect(codeOf(() => inspect(makeTar([{ name: 'l', type: '2', linkname: '' }])))).toBe(
      'SOURCE_BAD_LINK',
    );
  });

  it('accepts hardlinks to earlier files only, never to directories', () => {
    const ok = makeTar([
      { name: 'f', data: 'x' },
      { name: 'h', type: '1', linkname: './f' },
    ]);
    expect(inspect(ok).entries).toBe(2);
    const dir = makeTar([
      { name: 'd/', type: '5' },
      { name: 'h', type: '1', linkname: 'd' },
    ]);
    expect(codeOf(() => inspect(dir))).toBe('SOURCE_BAD_LINK');
  });

  it('refuses an empty archive as not an archive', () => {
    expect(codeOf(() => inspect(Buffer.alloc(1024)))).toBe('SOURCE_NOT_ARCHIVE');
  });
});
