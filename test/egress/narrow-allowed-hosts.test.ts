import { describe, expect, it } from 'vitest';
import { HostAllowlist } from '../../src/egress/host-allowlist.js';
import { MAX_ALLOWED_HOSTS, narrowAllowedHosts } from '../../src/egress/narrow-allowed-hosts.js';
import { AppError, isAppError } from '../../src/errors/app-error.js';

function list(...texts: string[]): HostAllowlist {
  const parsed = HostAllowlist.parse(texts);
  if (parsed.allowlist === undefined) throw new Error('invalid test list');
  return parsed.allowlist;
}

function thrown(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err;
    throw err;
  }
  throw new Error('expected an AppError');
}

const ceiling = list('*.npmjs.org', '*.debian.org', 'pypi.org');
const defaults = list('registry.npmjs.org', 'deb.debian.org');

describe('narrowAllowedHosts', () => {
  it("gives a build that sends no allowed_hosts the operator's default", () => {
    expect(narrowAllowedHosts({ requested: undefined, defaults, ceiling })).toBe(defaults);
  });

  it("replaces the default with the build's own list when it lies within the ceiling", () => {
    const narrowed = narrowAllowedHosts({
      requested: ['pypi.org', '*.npmjs.org'],
      defaults,
      ceiling,
    });
    expect(narrowed.toStrings()).toEqual(['pypi.org', '*.npmjs.org']);
    expect(narrowed.admits('deb.debian.org')).toBe(false);
    expect(narrowed.admits('www.npmjs.org')).toBe(true);
  });

  it('lets a build reach nothing at all with an empty list', () => {
    expect(
      narrowAllowedHosts({ requested: [], defaults, ceiling }).admits('registry.npmjs.org'),
    ).toBe(false);
  });

  it('refuses a widening request with ALLOWED_HOSTS_NOT_PERMITTED (403), naming what is outside', () => {
    const err = thrown(() =>
      narrowAllowedHosts({
        requested: ['registry.npmjs.org', '*', 'github.com'],
        defaults,
        ceiling,
      }),
    );
    expect(isAppError(err, 'ALLOWED_HOSTS_NOT_PERMITTED')).toBe(true);
    expect(err.status).toBe(403);
    expect(err.expose).toBe(true);
    expect(err.message).toContain('*, github.com');
    expect(err.details).toEqual({
      outside: ['*', 'github.com'],
      ceiling: ['*.npmjs.org', '*.debian.org', 'pypi.org'],
    });
  });

  it('refuses the bare suffix of a *.suffix ceiling entry', () => {
    const err = thrown(() => narrowAllowedHosts({ requested: ['npmjs.org'], defaults, ceiling }));
    expect(err.code).toBe('ALLOWED_HOSTS_NOT_PERMITTED');
  });

  it('refuses malformed entries with INVALID_ALLOWED_HOSTS (400), listing them all', () => {
    const err = thrown(() =>
      narrowAllowedHosts({ requested: ['ok.npmjs.org', 'not a host', 'x:443'], defaults, ceiling }),
    );
    expect(err.code).toBe('INVALID_ALLOWED_HOSTS');
    expect(err.status).toBe(400);
    expect(err.details).toEqual({ invalid: ['not a host', 'x:443'] });
  });

  it('refuses more than MAX_ALLOWED_HOSTS entries', () => {
    const many = Array.from({ length: MAX_ALLOWED_HOSTS + 1 }, (_, i) => `h${i}.npmjs.org`);
    expect(thrown(() => narrowAllowedHosts({ requested: many, defaults, ceiling })).code).toBe(
      'INVALID_ALLOWED_HOSTS',
    );
    expect(() => narrowAllowedHosts({ requested: many.slice(1), defaults, ceiling })).not.toThrow();
  });
});
