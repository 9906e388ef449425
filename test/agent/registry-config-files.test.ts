import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCredentialsDir } from '../../agent/credentials/credentials-dir.js';
import {
  renderAuthJson,
  renderBuildkitdToml,
  renderRegistriesConf,
} from '../../agent/credentials/registry-config-files.js';
import type { BuildJob } from '../../common/protocol/build-job.js';

const registry: BuildJob['registry'] = {
  host: '10.0.2.100:5000',
  insecure: true,
  repository: 'acme/web',
  tags: ['b_abc'],
  cacheRepository: 'cache/acme/main',
  mirror: { namespace: 'mirror', upstreams: ['docker.io', 'ghcr.io'] },
};

describe('registry configuration for the engines', () => {
  it('puts the token in the auth file as the Basic password', () => {
    const auth = JSON.parse(renderAuthJson('10.0.2.100:5000', 'tok.en')) as {
      auths: Record<string, { auth: string }>;
    };
    expect(Buffer.from(auth.auths['10.0.2.100:5000']!.auth, 'base64').toString()).toBe(
      'kiln-build:tok.en',
    );
  });

  it('rewrites every mirrored upstream into the Kiln registry for Buildah, with no upstream fallback', () => {
    const conf = renderRegistriesConf(registry);
    expect(conf).toBe(
      [
        'unqualified-search-registries = ["docker.io"]',
        'short-name-mode = "permissive"',
        '',
        '[[registry]]',
        'prefix = "10.0.2.100:5000"',
        'location = "10.0.2.100:5000"',
        'insecure = true',
        '',
        '[[registry]]',
        'prefix = "docker.io"',
        'location = "10.0.2.100:5000/mirror/docker.io"',
        'insecure = true',
        '',
        '[[registry]]',
        'prefix = "ghcr.io"',
        'location = "10.0.2.100:5000/mirror/ghcr.io"',
        'insecure = true',
        '',
      ].join('\n'),
    );
    expect(conf).not.toContain('[[registry.mirror]]');
  });

  it('gives buildkitd each upstream a mirror with the namespace path, and plain HTTP for the registry', () => {
    expect(renderBuildkitdToml(registry)).toBe(
      [
        '[registry."docker.io"]',
        '  mirrors = ["10.0.2.100:5000/mirror/docker.io"]',
        '',
        '[registry."ghcr.io"]',
        '  mirrors = ["10.0.2.100:5000/mirror/ghcr.io"]',
        '',
        '[registry."10.0.2.100:5000"]',
        '  http = true',
        '  insecure = true',
        '',
      ].join('\n'),
    );
  });
  it('bounds BuildKit state on a cache disk with GC limits derived from its size and threshold', () => {
    const toml = renderBuildkitdToml(registry, { diskBytes: 10_000_000_000, thresholdPercent: 80 });
    expect(toml).toContain(
      '[worker.oci]\n  gc = true\n  reservedSpace = "800000000"\n  maxUsedSpace = "8000000000"\n  minFreeSpace = "2000000000"\n',
    );
    expect(renderBuildkitdToml(registry)).not.toContain('[worker.oci]');
  });
});

describe('credentials directory', () => {
  let base: string;
  beforeEach(async () => {
    base = await mkdtemp(path.join(tmpdir(), 'kiln-creds-'));
  });
  afterEach(async () => {
    await rm(base, { recursive: true, force: true });
  });

  it('writes only the requested secrets, 0600 in a 0700 directory, and removes everything on dispose', async () => {
    const creds = await createCredentialsDir(base, registry, 'token', ['npmrc', 'missing'], {
      npmrc: '//registry/:_authToken=s3cret',
      extra: 'not requested',
    });
    expect((await stat(creds.dir)).mode & 0o777).toBe(0o700);
    for (const file of [
      creds.authFile,
      creds.registriesConf,
      creds.buildkitdToml,
      creds.secretFiles.npmrc!,
    ]) {
      expect((await stat(file)).mode & 0o777).toBe(0o600);
    }
    expect(Object.keys(creds.secretFiles)).toEqual(['npmrc']);
    expect(await readFile(creds.secretFiles.npmrc!, 'utf8')).toBe('//registry/:_authToken=s3cret');
    expect(await readdir(path.join(creds.dir, 'secrets'))).toEqual(['npmrc']);
    await creds.dispose();
    await creds.dispose();
    expect(await readdir(base)).toEqual([]);
  });
});
