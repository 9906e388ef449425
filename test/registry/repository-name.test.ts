import { describe, expect, it } from 'vitest';
import {
  isValidNameComponent,
  isValidRepositoryName,
  isValidTag,
} from '../../src/registry/repository-name.js';

describe('repository names (distribution-spec grammar)', () => {
  it('accepts every separator the spec allows: ".", "_", "__" and runs of "-"', () => {
    for (const name of [
      'a',
      'acme/web',
      'a.b',
      'a_b',
      'a__b',
      'a-b',
      'a--b',
      'a---b',
      'x/y.z/0-9',
    ]) {
      expect(isValidRepositoryName(name), name).toBe(true);
    }
  });

  it('refuses separators the spec does not allow and components that start or end with one', () => {
    for (const name of [
      '',
      'A',
      'a___b',
      'a..b',
      'a._b',
      'a-',
      '-a',
      '_a',
      'a/',
      '/a',
      'a//b',
      'acme/../beta',
      'acme/*',
      'a b',
    ]) {
      expect(isValidRepositoryName(name), name).toBe(false);
    }
  });

  it('holds the whole name to 255 characters', () => {
    const name = (n: number) => `${'a'.repeat(n - 2)}/b`;
    expect(isValidRepositoryName(name(255))).toBe(true);
    expect(isValidRepositoryName(name(256))).toBe(false);
  });

  it('takes a component as one name without "/"', () => {
    expect(isValidNameComponent('main--x')).toBe(true);
    expect(isValidNameComponent('a/b')).toBe(false);
    expect(isValidNameComponent('acme-')).toBe(false);
  });

  it('accepts tags up to 128 characters that do not start with "." or "-"', () => {
    expect(isValidTag('latest')).toBe(true);
    expect(isValidTag('_x.Y-1')).toBe(true);
    expect(isValidTag('t'.repeat(128))).toBe(true);
    expect(isValidTag('t'.repeat(129))).toBe(false);
    expect(isValidTag('.x')).toBe(false);
    expect(isValidTag('-x')).toBe(false);
  });
});
