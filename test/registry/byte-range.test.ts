import { describe, expect, it } from 'vitest';
import { parseContentRange, parseRangeHeader } from '../../src/registry/byte-range.js';

describe('parseRangeHeader', () => {
  it.each([
    [undefined, 10, null],
    ['bytes=0-0', 10, { start: 0, end: 0 }],
    ['bytes=3-', 10, { start: 3, end: 9 }],
    ['bytes=-4', 10, { start: 6, end: 9 }],
    ['bytes=-40', 10, { start: 0, end: 9 }],
    ['bytes=5-400', 10, { start: 5, end: 9 }],
    ['bytes=10-', 10, 'unsatisfiable'],
    ['bytes=-0', 10, 'unsatisfiable'],
    ['bytes=6-2', 10, 'unsatisfiable'],
    ['bytes=0-1,4-5', 10, 'unsatisfiable'],
    ['bytes=0-', 0, 'unsatisfiable'],
    ['items=0-1', 10, null],
  ])('reads %s against %i bytes as %j', (header, size, expected) => {
    expect(parseRangeHeader(header, size)).toEqual(expected);
  });
});

describe('parseContentRange', () => {
  it('accepts the spec form and the bytes-prefixed RFC form, and refuses inverted ranges', () => {
    expect(parseContentRange('0-99')).toEqual({ start: 0, end: 99 });
    expect(parseContentRange('bytes 100-199/*')).toEqual({ start: 100, end: 199 });
    expect(parseContentRange('9-3')).toBeNull();
    expect(parseContentRange('abc')).toBeNull();
  });
});
