import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MirrorConfigError, parseMirrorConfig } from '../../src/config/mirror-config.js';
import { readUpstreamCredentials } from '../../src/registry/mirror/upstream-credentials.js';
import { parseWwwAuthenticate } from '../../src/registry/mirror/www-authenticate.js';

function problems(env: Record<string, string>): readonly string[] {
  try {
    parseMirrorConfig(env);
  } catch (err) {
    if (err instanceof MirrorConfigError) return err.problems;
    throw err;
  }
  throw new Error('parseMirrorConfig accepted the configuration');
}

describe('parseMirrorConfig', () => {
  it('defaults to the four public registries, anonymous, with a five-minute tag TTL', () => {
    const config = parseMirrorConfig({});
    expect(config.upstreams).toEqual([
      { name: 'docker.io', endpoint: 'https://registry-1.docker.io' },
      { name: 'ghcr.io', endpoint: 'https://ghcr.io' },
      { name: 'quay.io', endpoint: 'https://quay.io' },
      { name: 'registry.k8s.io', endpoint: 'https://registry.k8s.io' },
    ]);
    expect(config.credentialsFile).toBeNull();
    expect(config.tagTtlSeconds).toBe(300);
    expect(Object.isFrozen(config.upstreams)).toBe(true);
  });

  it('takes names with URLs, plain http only for names listed as insecure', () => {
    const config = parseMirrorConfig({
      KILN_MIRROR_UPSTREAMS:
        'docker.io, internal=https://registry.example:8443, dev=http://127.0.0.1:5001',
      KILN_MIRROR_INSECURE_UPSTREAMS: 'dev',
      KILN_MIRROR_CREDENTIALS_FILE: 'auth.json',
      KILN_MIRROR_TAG_TTL_SECONDS: '0',
    });
    expect(config.upstreams).toEqual([
      { name: 'docker.io', endpoint: 'https://registry-1.docker.io' },
      { name: 'internal', endpoint: 'https://registry.example:8443' },
      { name: 'dev', endpoint: 'http://127.0.0.1:5001' },
    ]);
    expect(config.credentialsFile).toBe(path.resolve('auth.json'));
    expect(config.tagTtlSeconds).toBe(0);
  });

  it('has no upstreams on an air-gapped host', () => {
    expect(parseMirrorConfig({ KILN_MIRROR_AIR_GAPPED: 'true' }).upstreams).toEqual([]);
  });

  it('reports every problem at once', () => {
    expect(
      problems({
        KILN_MIRROR_UPSTREAMS:
          'Docker.IO,dev=http://127.0.0.1:5001,dev=https://x.example,path=https://x.example/v2,bad=ftp://x',
        KILN_MIRROR_INSECURE_UPSTREAMS: 'other',
      }),
    ).toEqual([
      'KILN_MIRROR_UPSTREAMS: "Docker.IO" is not a valid upstream name (lowercase letters, digits, dots and dashes)',
      'KILN_MIRROR_UPSTREAMS: "dev" uses plain http; list it in KILN_MIRROR_INSECURE_UPSTREAMS to allow that',
      'KILN_MIRROR_UPSTREAMS: "dev" is listed twice',
      'KILN_MIRROR_UPSTREAMS: the URL of "path" must be an origin only (no path, query or user)',
      'KILN_MIRROR_UPSTREAMS: the URL of "bad" must be http(s)',
      'KILN_MIRROR_INSECURE_UPSTREAMS: "other" is not a configured upstream',
    ]);
    expect(
      problems({ KILN_MIRROR_AIR_GAPPED: 'true', KILN_MIRROR_UPSTREAMS: 'docker.io' }),
    ).toEqual(['KILN_MIRROR_UPSTREAMS: must not be set when KILN_MIRROR_AIR_GAPPED is true']);
    expect(problems({ KILN_MIRROR_TAG_TTL_SECONDS: 'soon' })[0]).toMatch(
      /^KILN_MIRROR_TAG_TTL_SECONDS:/,
    );
  });
});

describe('readUpstreamCredentials', () => {
  it('reads a containers auth file, mapping Docker Hub’s legacy keys to docker.io', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-mirror-auth-'));
    try {
      const file = path.join(dir, 'auth.json');
      await writeFile(
        file,
        JSON.stringify({
          auths: {
            'https://index.docker.io/v1/': { auth: Buffer.from('hub:p:w').toString('base64') },
            'ghcr.io': { username: 'gh', password: 'token' },
          },
        }),
      );
      expect(await readUpstreamCredentials(file)).toEqual(
        new Map([
          ['docker.io', { username: 'hub', password: 'p:w' }],
          ['ghcr.io', { username: 'gh', password: 'token' }],
        ]),
      );
      await writeFile(file, JSON.stringify({ auths: { 'quay.io': { auth: 'bm9jb2xvbg==' } } }));
      await expect(readUpstreamCredentials(file)).rejects.toThrow(/"quay.io" has a malformed auth/);
      await writeFile(file, 'not json');
      await expect(readUpstreamCredentials(file)).rejects.toThrow(/cannot read it as JSON/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('parseWwwAuthenticate', () => {
  it('reads Docker Hub’s bearer challenge and a Basic one', () => {
    expect(
      parseWwwAuthenticate(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull"',
      ),
    ).toEqual([
      {
        scheme: 'bearer',
        params: {
          realm: 'https://auth.docker.io/token',
          service: 'registry.docker.io',
          scope: 'repository:library/busybox:pull',
        },
      },
    ]);
    expect(parseWwwAuthenticate('Basic realm="kiln-test"')).toEqual([
      { scheme: 'basic', params: { realm: 'kiln-test' } },
    ]);
  });

  it('splits several challenges and unescapes quoted values', () => {
    expect(
      parseWwwAuthenticate('Basic realm="a \\"b\\"", Bearer realm=x, error="invalid_token"'),
    ).toEqual([
      { scheme: 'basic', params: { realm: 'a "b"' } },
      { scheme: 'bearer', params: { realm: 'x', error: 'invalid_token' } },
    ]);
  });
});
