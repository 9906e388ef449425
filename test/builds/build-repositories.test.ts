import { describe, expect, it } from 'vitest';
import {
  cacheRepository,
  isValidCacheScope,
  isValidImageName,
  outputRepository,
} from '../../src/builds/build-repositories.js';
import { isValidRepositoryName } from '../../src/registry/repository-name.js';

const samples = [
  'web',
  'web__app',
  'web--app',
  'web---app',
  'team/web',
  'team__x/web--y',
  'web_',
  'web___app',
  '-web',
  'Web',
  'web//x',
  'web/',
  'a.b',
  'a..b',
  'x'.repeat(128),
  'x'.repeat(129),
];

describe('build repositories', () => {
  it('accepts image names with "__" and "--", which the registry accepts too', () => {
    expect(isValidImageName('web__app')).toBe(true);
    expect(isValidImageName('web--app/x')).toBe(true);
    expect(isValidCacheScope('main__x')).toBe(true);
    expect(isValidCacheScope('main--x')).toBe(true);
  });

  it('accepts an image name exactly when the registry accepts the repository it lands in', () => {
    for (const name of samples.filter((s) => s.length <= 128)) {
      expect(isValidImageName(name), name).toBe(
        isValidRepositoryName(outputRepository('acme', 'b_x', name)),
      );
    }
  });

  it('accepts a cache scope exactly when it is one component of a valid cache repository', () => {
    for (const scope of samples.filter((s) => s.length <= 128)) {
      const repo = cacheRepository('acme', scope)!;
      expect(isValidCacheScope(scope), scope).toBe(
        !scope.includes('/') && isValidRepositoryName(repo),
      );
    }
  });

  it('refuses image names and cache scopes over 128 characters', () => {
    expect(isValidImageName('x'.repeat(129))).toBe(false);
    expect(isValidCacheScope('x'.repeat(129))).toBe(false);
  });
});
