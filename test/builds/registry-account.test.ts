import { describe, expect, it } from 'vitest';
import { registryAccount } from '../../src/builds/registry-account.js';

const id = 'b_aaaaaaaaaaaaaaaaaaaa';
const D1 = `sha256:${'1'.repeat(64)}`;
const D2 = `sha256:${'2'.repeat(64)}`;
const build = {
  id,
  tenant: 'acme',
  repository: 'acme/web',
  cacheRepository: null,
  request: {
    imageName: null,
    imageTags: [
      { name: 'web', tag: 'v1' },
      { name: 'api', tag: 'v1' },
    ],
  },
};
const provenance = {
  sourceSha256: '',
  treeSha256: '',
  lockfiles: {},
  baseImages: {},
  engine: { name: 'buildah', version: '1' },
};
const push = (repository: string, reference: string, digest: string) => ({
  upstream: null,
  repository,
  reference,
  digest,
});

describe('registry account of a build with several references', () => {
  it('agrees when every reference holds the digest pushed under the build id', () => {
    const account = registryAccount(
      build,
      { imageDigest: D1, provenance },
      {
        served: [push('acme/api', 'v1', D1)],
        pushed: [push('acme/web', id, D1), push('acme/web', 'v1', D1), push('acme/api', 'v1', D1)],
      },
    );
    // A manifest of another of the build's own repositories is not a base image.
    expect(account).toEqual({ baseImages: [], pushedDigest: D1, disagreements: [] });
  });

  it('names a reference never pushed and one holding another digest', () => {
    const account = registryAccount(
      build,
      { imageDigest: D1, provenance },
      { served: [], pushed: [push('acme/web', id, D1), push('acme/api', 'v1', D2)] },
    );
    expect(account.disagreements).toEqual([
      'the registry saw no push of acme/web:v1',
      `the registry accepted ${D2} as acme/api:v1, not the build's ${D1}`,
    ]);
  });
});
