import { describe, expect, it } from 'vitest';
import { HostAllowlist } from '../../src/egress/host-allowlist.js';
import { parseHostPattern, patternCovers } from '../../src/egress/host-pattern.js';

function list(...texts: string[]): HostAllowlist {
  const parsed = HostAllowlist.parse(texts);
  if (parsed.allowlist === undefined) throw new Error(`invalid: ${parsed.invalid.join(', ')}`);
  return parsed.allowlist;
}

describe('parseHostPattern', () => {
  it('reads *, exact hosts and *.suffix, normalised', () => {
    expect(parseHostPattern('*')).toEqual({ kind: 'any' });
    expect(parseHostPattern(' Registry.NPMJS.org. ')).toEqual({
      kind: 'exact',
      host: 'registry.npmjs.org',
    });
    expect(parseHostPattern('*.NPMJS.org')).toEqual({ kind: 'suffix', suffix: 'npmjs.org' });
    expect(parseHostPattern('127.1')).toEqual({ kind: 'exact', host: '127.0.0.1' });
    expect(parseHostPattern('[::1]')).toEqual({ kind: 'exact', host: '::1' });
  });

  it.each([
    '',
    '*.',
    '**',
    '*.*.example.com',
    'foo.*.com',
    '*example.com',
    '*.10.0.0.5',
    'a b',
    'x:1',
  ])('refuses %j', (text) => {
    expect(parseHostPattern(text)).toBeUndefined();
  });
});

describe('HostAllowlist', () => {
  it('admits exact names only as written', () => {
    const l = list('registry.npmjs.org');
    expect(l.admits('registry.npmjs.org')).toBe(true);
    expect(l.admits('evil.registry.npmjs.org')).toBe(false);
    expect(l.admits('registry.npmjs.org.evil.example')).toBe(false);
    expect(l.admits('npmjs.org')).toBe(false);
  });

  it('admits names below a *.suffix at any depth, but not the suffix itself or look-alikes', () => {
    const l = list('*.npmjs.org');
    expect(l.admits('registry.npmjs.org')).toBe(true);
    expect(l.admits('a.b.npmjs.org')).toBe(true);
    expect(l.admits('npmjs.org')).toBe(false);
    expect(l.admits('evilnpmjs.org')).toBe(false);
    expect(l.admits('npmjs.org.evil.example')).toBe(false);
  });

  it('admits IP literals only through an exact entry or *', () => {
    expect(HostAllowlist.parse(['*.0.0.1']).invalid).toEqual(['*.0.0.1']);
    expect(list('*.example').admits('127.0.0.1')).toBe(false);
    expect(list('127.0.0.1').admits('127.0.0.1')).toBe(true);
    expect(list('*').admits('127.0.0.1')).toBe(true);
  });

  it('reports every invalid entry at once', () => {
    expect(HostAllowlist.parse(['ok.example', 'bad host', '*.', '*.fine.example'])).toEqual({
      invalid: ['bad host', '*.'],
    });
  });

  it('admits nothing when empty', () => {
    expect(list().admits('example.com')).toBe(false);
  });

  it('writes its patterns back normalised', () => {
    expect(list('*.Example.COM', 'A.example.org.', '*').toStrings()).toEqual([
      '*.example.com',
      'a.example.org',
      '*',
    ]);
  });
});

describe('within a ceiling', () => {
  it.each([
    ['*', 'anything.example', true],
    ['*', '*.example.com', true],
    ['*', '*', true],
    ['*.example.com', 'a.example.com', true],
    ['*.example.com', '*.example.com', true],
    ['*.example.com', '*.a.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', '*', false],
    ['*.example.com', '*.com', false],
    ['*.example.com', 'a.example.org', false],
    ['a.example.com', 'a.example.com', true],
    ['a.example.com', '*.a.example.com', false],
    ['a.example.com', 'b.example.com', false],
  ])('ceiling %s covers %s: %s', (outer, inner, covers) => {
    expect(patternCovers(parseHostPattern(outer)!, parseHostPattern(inner)!)).toBe(covers);
  });

  it('lists the patterns that reach beyond the ceiling', () => {
    const ceiling = list('*.npmjs.org', 'pypi.org', '*.pythonhosted.org');
    expect(list('registry.npmjs.org', 'files.pythonhosted.org').outside(ceiling)).toEqual([]);
    expect(list('registry.npmjs.org', '*', 'github.com', '*.org').outside(ceiling)).toEqual([
      '*',
      'github.com',
      '*.org',
    ]);
  });
});
