import { describe, expect, it } from 'vitest';
import { reasonOf } from './tar-format-reason.js';
import { parsePaxRecords, parsePaxSize } from '../../common/archive/pax-records.js';

describe('parsePaxRecords', () => {
  it('reads "<len> <key>=<value>\\n" records as raw values, the last of a repeated key winning', () => {
    const records = parsePaxRecords(
      Buffer.from('12 path=a/b\n16 linkpath=x=y\n11 size=42\n12 path=c/d\n'),
    );
    expect(Object.fromEntries([...records].map(([k, v]) => [k, v.toString()]))).toEqual({
      path: 'c/d',
      linkpath: 'x=y',
      size: '42',
    });
  });

  it('counts the length in bytes, so multi-byte values are kept whole', () => {
    const value = 'd/\u00e9t\u00e9';
    const rest = ` path=${value}\n`;
    const len = Buffer.byteLength(rest) + 2;
    const records = parsePaxRecords(Buffer.from(`${len}${rest}`));
    expect(records.get('path')?.toString('utf8')).toBe(value);
  });

  it.each([
    ['no space after the length', '12path=a/b\n'],
    ['a length past the body', '40 path=a/b\n'],
    ['a length shorter than its own digits', '2 path=a/b\n'],
    ['a length that is not decimal digits', '1e1 path=\n'],
    ['a record without "="', '10 pathab\n'],
    ['a record not ending in a newline', '12 path=a/bX'],
    ['NUL padding after the records', '12 path=a/b\n\0\0\0\0'],
  ])('refuses %s', (_label, body) => {
    expect(reasonOf(() => parsePaxRecords(Buffer.from(body)))).toBe('pax-record');
  });
});

describe('parsePaxSize', () => {
  it('accepts 1 to 15 decimal digits', () => {
    expect(parsePaxSize(Buffer.from('600'))).toBe(600);
    expect(parsePaxSize(Buffer.from('999999999999999'))).toBe(999_999_999_999_999);
  });

  it.each(['', ' 1', '0x10', '1e3', '-1', '+5', '1234567890123456'])('refuses %j', (value) => {
    expect(reasonOf(() => parsePaxSize(Buffer.from(value)))).toBe('pax-size');
  });
});
