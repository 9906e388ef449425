import { describe, expect, it } from 'vitest';
import {
  buildRepositories,
  buildTags,
  cacheRepository,
  isValidCacheScope,
  isValidImageName,
  isValidImageTag,
  outputReferences,
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
        isValidRepositoryName(outputRepository('acme', 'b_x', { imageName: name })),
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

  it('pushes the build id, then latest for image_name, or every image_tags entry once', () => {
    const id = 'b_aaaaaaaaaaaaaaaaaaaa';
    expect(outputReferences('acme', id, { imageName: null })).toEqual([
      { repository: `acme/${id}`, tag: id },
    ]);
    expect(outputReferences('acme', id, { imageName: 'web' })).toEqual([
      { repository: 'acme/web', tag: id },
      { repository: 'acme/web', tag: 'latest' },
    ]);
    const imageTags = [
      { name: 'web', tag: 'v1' },
      { name: 'team/api', tag: 'v1' },
      { name: 'web', tag: 'stable' },
    ];
    const request = { imageName: null, imageTags };
    expect(outputRepository('acme', id, request)).toBe('acme/web');
    expect(outputReferences('acme', id, request)).toEqual([
      { repository: 'acme/web', tag: id },
      { repository: 'acme/web', tag: 'v1' },
      { repository: 'acme/team/api', tag: 'v1' },
      { repository: 'acme/web', tag: 'stable' },
    ]);
    const build = { id, tenant: 'acme', repository: 'acme/web', request };
    expect(buildTags(build)).toEqual([id, 'v1', 'stable']);
    expect(buildRepositories(build)).toEqual(['acme/web', 'acme/team/api']);
  });

  it('takes OCI tags but none shaped like a build id (every build owns its id tag)', () => {
    expect(['v1', 'latest', '1.2.3-rc_1', 'X'.repeat(128)].map(isValidImageTag)).toEqual([
      true,
      true,
      true,
      true,
    ]);
    expect(
      ['', '.v1', '-v1', 'v 1', 'x'.repeat(129), 'b_aaaaaaaaaaaaaaaaaaaa'].map(isValidImageTag),
    ).toEqual([false, false, false, false, false, false]);
  });
});
