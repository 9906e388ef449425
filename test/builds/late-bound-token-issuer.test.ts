import { describe, expect, it } from 'vitest';
import type { Build } from '../../src/builds/build.js';
import { LateBoundTokenIssuer } from '../../src/builds/late-bound-token-issuer.js';

const build = { id: 'b_aaaaaaaaaaaaaaaaaaaa' } as Build;

describe('LateBoundTokenIssuer', () => {
  it('refuses to issue before it is bound, then delegates, and binds only once', async () => {
    const issuer = new LateBoundTokenIssuer();
    await expect(issuer.issueBuildToken(build)).rejects.toMatchObject({ code: 'INTERNAL' });
    const target = { issueBuildToken: (b: Build) => Promise.resolve(`token-${b.id}`) };
    issuer.bind(target);
    await expect(issuer.issueBuildToken(build)).resolves.toBe(`token-${build.id}`);
    expect(() => {
      issuer.bind(target);
    }).toThrow(/already bound/);
  });
});
