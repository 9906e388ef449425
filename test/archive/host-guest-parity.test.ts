import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resealTarHeader } from './reseal-tar-header.js';
import { unpackSource } from '../../agent/source/unpack-source.js';
import { isArchiveError } from '../../common/archive/archive-error.js';
import { MAX_METADATA_BYTES } from '../../common/archive/archive-limits.js';
import { TarInspector } from '../../src/builds/tar-inspector.js';
import { isAppError } from '../../src/errors/app-error.js';
import { paxEntry, tarArchive, tarEntry } from '../helpers/tar-builder.js';

/**
 * The host (TarInspector, while the upload streams in) and the guest (unpackSource, inside
 * the VM) decode with common/archive and judge with one archive policy; these archives are
 * the corners where their old parsers and policies disagreed. Both sides must now give the
 * same answer, and every refusal must be an HTTP 4xx at upload, before a VM boots.
 */
const LIMITS = { maxUnpackedBytes: 1024 * 1024, maxEntries: 100, maxPathBytes: 255 };

let base: string;
let roots = 0;

beforeEach(async () => {
  base = await mkdtemp(path.join(tmpdir(), 'kiln-parity-'));
});
afterEach(async () => {
  await rm(base, { recursive: true, force: true });
});

function hostCode(archive: Buffer): string {
  try {
    const inspector = new TarInspector(LIMITS);
    for (let i = 0; i < archive.length; i += 300) inspector.push(archive.subarray(i, i + 300));
    inspector.end();
    return 'ok';
  } catch (err) {
    if (!isAppError(err)) return String(err);
    expect(err.status, `${err.code} is answered at upload`).toBeGreaterThanOrEqual(400);
    expect(err.status).toBeLessThan(500);
    return err.code;
  }
}

async function guest(archive: Buffer): Promise<{ code: string; root: string }> {
  const root = path.join(base, `root-${++roots}`);
  await mkdir(root);
  try {
    await unpackSource(Readable.from([archive]), root, LIMITS);
    return { code: 'ok', root };
  } catch (err) {
    return { code: isArchiveError(err) ? err.code : String(err), root };
  }
}

async function codes(archive: Buffer): Promise<{ host: string; guest: string }> {
  return { host: hostCode(archive), guest: (await guest(archive)).code };
}

describe('host and guest read an archive the same way', () => {
  it('reads an extension header after a pax size with its own size, the entry with the pax size', async () => {
    const data = 'z'.repeat(600);
    const archive = tarArchive(
      paxEntry({ size: '600' }),
      tarEntry({ name: '././@LongLink', type: 'L', content: 'long-name\0' }),
      Buffer.concat([tarEntry({ name: 'short', size: 0 }), Buffer.from(data), Buffer.alloc(424)]),
    );
    expect(hostCode(archive)).toBe('ok');
    const g = await guest(archive);
    expect(g.code).toBe('ok');
    expect(await readFile(path.join(g.root, 'long-name'), 'utf8')).toBe(data);
  });

  it('refuses a global pax header that sets a path with SOURCE_FORBIDDEN_ENTRY', async () => {
    const global = paxEntry({ path: 'elsewhere' });
    global[156] = 'g'.charCodeAt(0);
    const archive = tarArchive(resealTarHeader(global), tarEntry({ name: 'f', content: 'x' }));
    expect(await codes(archive)).toEqual({
      host: 'SOURCE_FORBIDDEN_ENTRY',
      guest: 'SOURCE_FORBIDDEN_ENTRY',
    });
  });

  it('refuses a hardlink carrying data with SOURCE_CORRUPT', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'f', content: 'x' }),
      tarEntry({ name: 'h', type: '1', linkName: 'f', content: 'hidden' }),
    );
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses a pax size that is not plain decimal digits with SOURCE_CORRUPT', async () => {
    const archive = tarArchive(paxEntry({ size: '1e3' }), tarEntry({ name: 'f', content: 'x' }));
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses a pax record without its newline with SOURCE_CORRUPT', async () => {
    const bad = tarEntry({ name: 'PaxHeader', type: 'x', content: '12 path=a/bX' });
    const archive = tarArchive(bad, tarEntry({ name: 'f', content: 'x' }));
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses an extended header followed by the end-of-archive marker with SOURCE_CORRUPT', async () => {
    const archive = tarArchive(tarEntry({ name: 'f', content: 'x' }), paxEntry({ path: 'g' }));
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses bytes after the terminator of a size field with SOURCE_CORRUPT', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'f', content: 'x' }),
      tarEntry({ name: 'g', content: 'x' }),
    );
    archive.write('0000000001\0j', 512 + 512 + 124, 'latin1');
    expect(await codes(resealTarHeader(archive, 1024))).toEqual({
      host: 'SOURCE_CORRUPT',
      guest: 'SOURCE_CORRUPT',
    });
  });

  it('does not read GNU-format time fields as a ustar name prefix', async () => {
    const archive = tarArchive(tarEntry({ name: 'f', content: 'x' }));
    archive.write('ustar  \0', 257, 'latin1');
    archive.write('../../14515331212', 345, 'latin1');
    resealTarHeader(archive);
    expect(await codes(archive)).toEqual({ host: 'ok', guest: 'ok' });
  });

  it('applies an empty GNU long name instead of falling back to the header name', async () => {
    const archive = tarArchive(
      tarEntry({ name: '././@LongLink', type: 'L' }),
      tarEntry({ name: 'f', content: 'x' }),
    );
    expect(await codes(archive)).toEqual({
      host: 'SOURCE_UNSAFE_PATH',
      guest: 'SOURCE_UNSAFE_PATH',
    });
  });
});

describe('host and guest apply one archive policy', () => {
  const file = (name: string, content = 'x'): Buffer => tarEntry({ name, content });

  it('refuses an archive without its end-of-archive marker with SOURCE_CORRUPT', async () => {
    const archive = Buffer.concat([file('f'), file('g')]);
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses an end-of-archive marker cut to one zero block with SOURCE_CORRUPT', async () => {
    const archive = Buffer.concat([file('f'), Buffer.alloc(512)]);
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses data after the end-of-archive marker with SOURCE_CORRUPT', async () => {
    const archive = Buffer.concat([tarArchive(file('f')), file('hidden')]);
    expect(await codes(archive)).toEqual({ host: 'SOURCE_CORRUPT', guest: 'SOURCE_CORRUPT' });
  });

  it('refuses an archive that is only an end-of-archive marker with SOURCE_NOT_ARCHIVE', async () => {
    expect(await codes(Buffer.alloc(1024))).toEqual({
      host: 'SOURCE_NOT_ARCHIVE',
      guest: 'SOURCE_NOT_ARCHIVE',
    });
  });

  it('refuses a metadata header over the limit with SOURCE_PATH_TOO_LONG', async () => {
    const archive = tarArchive(
      tarEntry({
        name: '././@LongLink',
        type: 'L',
        content: Buffer.alloc(MAX_METADATA_BYTES + 1, 0x61),
      }),
      file('f'),
    );
    expect(await codes(archive)).toEqual({
      host: 'SOURCE_PATH_TOO_LONG',
      guest: 'SOURCE_PATH_TOO_LONG',
    });
  });

  it('refuses a symlink to /etc followed by a file written through it with SOURCE_BAD_LINK', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'etc', type: '2', linkName: '/etc' }),
      file('etc/cron.d/evil', '* * * * * root sh\n'),
    );
    expect(await codes(archive)).toEqual({ host: 'SOURCE_BAD_LINK', guest: 'SOURCE_BAD_LINK' });
  });

  it('refuses a file written through an earlier symlink inside the root with SOURCE_UNSAFE_PATH', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'sub/', type: '5' }),
      tarEntry({ name: 'ln', type: '2', linkName: 'sub' }),
      file('ln/f'),
    );
    expect(await codes(archive)).toEqual({
      host: 'SOURCE_UNSAFE_PATH',
      guest: 'SOURCE_UNSAFE_PATH',
    });
  });

  it('refuses a symlink that escapes through another symlink with SOURCE_BAD_LINK', async () => {
    const archive = tarArchive(
      tarEntry({ name: 'a', type: '2', linkName: '.' }),
      tarEntry({ name: 'b', type: '2', linkName: 'a/..' }),
    );
    expect(await codes(archive)).toEqual({ host: 'SOURCE_BAD_LINK', guest: 'SOURCE_BAD_LINK' });
  });

  it('refuses a hardlink to a symlink with SOURCE_BAD_LINK', async () => {
    const archive = tarArchive(
      file('f'),
      tarEntry({ name: 'l', type: '2', linkName: 'f' }),
      tarEntry({ name: 'h', type: '1', linkName: 'l' }),
    );
    expect(await codes(archive)).toEqual({ host: 'SOURCE_BAD_LINK', guest: 'SOURCE_BAD_LINK' });
  });

  it('refuses a directory replacing a file, and a file replacing a directory, with SOURCE_UNSAFE_PATH', async () => {
    const dirOverFile = tarArchive(file('x'), tarEntry({ name: 'x/', type: '5' }));
    const fileOverDir = tarArchive(tarEntry({ name: 'x/', type: '5' }), file('x'));
    for (const archive of [dirOverFile, fileOverDir]) {
      expect(await codes(archive)).toEqual({
        host: 'SOURCE_UNSAFE_PATH',
        guest: 'SOURCE_UNSAFE_PATH',
      });
    }
  });

  it('refuses a file that names the root with SOURCE_UNSAFE_PATH', async () => {
    expect(await codes(tarArchive(file('./')))).toEqual({
      host: 'SOURCE_UNSAFE_PATH',
      guest: 'SOURCE_UNSAFE_PATH',
    });
  });

  it('refuses a bad checksum after a pax header but before any entry with SOURCE_NOT_ARCHIVE', async () => {
    const second = file('f');
    second[0] = 'g'.charCodeAt(0);
    const archive = tarArchive(paxEntry({ mtime: '1' }), second);
    expect(await codes(archive)).toEqual({
      host: 'SOURCE_NOT_ARCHIVE',
      guest: 'SOURCE_NOT_ARCHIVE',
    });
  });
});
