import { describe, expect, it } from 'vitest';
import { resealTarHeader } from './reseal-tar-header.js';
import { reasonOf } from './tar-format-reason.js';
import {
  blockPadding,
  decodeTarHeader,
  isZeroBlock,
  TAR_BLOCK,
} from '../../common/archive/tar-header.js';
import { tarEntry } from '../helpers/tar-builder.js';

/** The 512-byte header of a hand-built entry. */
function block(name = 'f', content = 'x'): Buffer {
  return Buffer.from(tarEntry({ name, content, mode: 0o640, mtime: 1234 }).subarray(0, TAR_BLOCK));
}

describe('decodeTarHeader', () => {
  it('decodes name, mode, size, mtime, type and link name of a ustar header', () => {
    const h = decodeTarHeader(block('dir/file.txt', 'hello'));
    expect(h).toMatchObject({ mode: 0o640, size: 5, mtime: 1234, type: '0' });
    expect(h?.name.toString()).toBe('dir/file.txt');
    expect(h?.linkName.length).toBe(0);
  });

  it('returns null for an all-zero block (end of archive)', () => {
    expect(decodeTarHeader(Buffer.alloc(TAR_BLOCK))).toBeNull();
  });

  it('refuses a block shorter than 512 bytes', () => {
    expect(reasonOf(() => decodeTarHeader(Buffer.alloc(100, 1)))).toBe('truncated');
  });

  it('joins the POSIX ustar prefix but not the GNU fields stored at the same offset', () => {
    const posix = block('name');
    posix.write('some/prefix', 345, 'latin1');
    expect(decodeTarHeader(resealTarHeader(posix))?.name.toString()).toBe('some/prefix/name');
    const gnu = block('name');
    gnu.write('ustar  \0', 257, 'latin1');
    gnu.write('14515331212\0', 345, 'latin1');
    expect(decodeTarHeader(resealTarHeader(gnu))?.name.toString()).toBe('name');
  });

  it('keeps names as raw bytes', () => {
    const h = block('n');
    h[1] = 0xff;
    expect(decodeTarHeader(resealTarHeader(h))?.name).toEqual(Buffer.from([0x6e, 0xff]));
  });

  it('refuses a checksum that does not match, is empty or is not octal', () => {
    const wrong = block();
    wrong[0] = 0x67;
    expect(reasonOf(() => decodeTarHeader(wrong))).toBe('checksum');
    const empty = block();
    empty.fill(0, 148, 156);
    expect(reasonOf(() => decodeTarHeader(empty))).toBe('checksum');
    const text = Buffer.from('this is not a tar archive\n'.repeat(20).slice(0, TAR_BLOCK));
    expect(reasonOf(() => decodeTarHeader(text))).toBe('checksum');
  });

  it('refuses a base-256 checksum', () => {
    const h = resealTarHeader(block());
    const sum = parseInt(h.subarray(148, 154).toString('latin1'), 8);
    h.fill(0, 148, 156);
    h[148] = 0x80;
    h.writeUIntBE(sum, 152, 4);
    expect(reasonOf(() => decodeTarHeader(h))).toBe('checksum');
  });

  it('reads octal fields with leading spaces and space or NUL terminators', () => {
    const h = block();
    h.write('   17 \0\0\0\0\0\0', 124, 'latin1');
    expect(decodeTarHeader(resealTarHeader(h))?.size).toBe(0o17);
    const blank = block();
    blank.fill(0, 124, 136);
    expect(decodeTarHeader(resealTarHeader(blank))?.size).toBe(0);
  });

  it('refuses bytes after the terminator of a numeric field', () => {
    const h = block();
    h.write('0000001\0junk', 124, 'latin1');
    expect(reasonOf(() => decodeTarHeader(resealTarHeader(h)))).toBe('number');
    const mode = block();
    mode.write('0644x\0\0\0', 100, 'latin1');
    expect(reasonOf(() => decodeTarHeader(resealTarHeader(mode)))).toBe('number');
  });

  it('reads GNU base-256 sizes and refuses negative or overflowing ones', () => {
    const big = block();
    big.fill(0, 124, 136);
    big[124] = 0x80;
    big.writeUIntBE(2 ** 40 + 3, 130, 6);
    expect(decodeTarHeader(resealTarHeader(big))?.size).toBe(2 ** 40 + 3);
    const negative = block();
    negative.fill(0xff, 124, 136);
    expect(reasonOf(() => decodeTarHeader(resealTarHeader(negative)))).toBe('number');
    const overflow = block();
    overflow.fill(0, 124, 136);
    overflow[124] = 0x80;
    overflow[128] = 0x01;
    expect(reasonOf(() => decodeTarHeader(resealTarHeader(overflow)))).toBe('number');
  });
});

describe('isZeroBlock and blockPadding', () => {
  it('recognises zero blocks and pads bodies to the next 512-byte boundary', () => {
    expect(isZeroBlock(Buffer.alloc(TAR_BLOCK))).toBe(true);
    expect(isZeroBlock(Buffer.from([0, 0, 1]))).toBe(false);
    expect([0, 1, 511, 512, 513].map(blockPadding)).toEqual([0, 511, 1, 0, 511]);
  });
});
