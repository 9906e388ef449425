import { describe, expect, it } from 'vitest';
import { Access, parseScopeParams } from '../../src/registry/access-scope.js';

describe('parseScopeParams', () => {
  it('merges repeated and space-separated scopes and expands *', () => {
    expect(
      parseScopeParams([
        'repository:a/b:pull repository:c:push',
        'repository:a/b:push',
        'registry:catalog:*',
        'repository:d:*',
      ]),
    ).toEqual([
      { name: 'a/b', actions: ['pull', 'push'] },
      { name: 'c', actions: ['push'] },
      { name: 'd', actions: ['pull', 'push', 'delete'] },
    ]);
  });
});

describe('Access', () => {
  it('drops token-claim globs other than library/* and always allows pulling library/*', () => {
    const access = Access.fromTokenClaim([
      { type: 'repository', name: 'acme/*', actions: ['pull', 'push'] },
      { type: 'repository', name: 'cache/acme/main', actions: ['pull', 'push'] },
    ]);
    expect(access.allows('acme/web', 'pull')).toBe(false);
    expect(access.allows('library/debian', 'pull')).toBe(true);
    expect(access.allows('library/debian', 'push')).toBe(false);
    expect(access.allows('cache/acme/main', 'delete')).toBe(true);
    expect(access.allows('cache/acme/mainx', 'pull')).toBe(false);
  });

  it('honours tenant globs derived from API tokens', () => {
    const access = new Access([{ type: 'repository', name: 'acme/*', actions: ['pull'] }]);
    expect(access.allows('acme/web', 'pull')).toBe(true);
    expect(access.allows('acme/web', 'push')).toBe(false);
    expect(access.allows('acmex/web', 'pull')).toBe(false);
  });
});
