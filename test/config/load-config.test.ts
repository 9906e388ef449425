import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';

describe('loadConfig', () => {
  it('applies defaults, parses byte sizes and freezes the result', () => {
    const config = loadConfig({
      KILN_DATA_DIR: '/tmp/kiln-x',
      KILN_MAX_SOURCE_BYTES: '512M',
      HOME: '/root',
    });
    expect(config.server).toMatchObject({
      host: '127.0.0.1',
      port: 8083,
      publicUrl: 'http://127.0.0.1:8083',
    });
    expect(config.builds.maxSourceBytes).toBe(512 * 1024 ** 2);
    expect(config.builds.maxConcurrent).toBe(2);
    expect(Object.isFrozen(config.builds)).toBe(true);
  });

  it('reports every problem at once', () => {
    let error: unknown;
    try {
      loadConfig({ KILN_PORT: 'eighty', KILN_MAX_CPUS: '0', KILN_LOG_LEVEL: 'loud' });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join('\n');
    expect(problems).toMatch(/KILN_PORT/);
    expect(problems).toMatch(/KILN_MAX_CPUS/);
    expect(problems).toMatch(/KILN_LOG_LEVEL/);
  });

  it('refuses inconsistent ranges', () => {
    expect(() => loadConfig({ KILN_DEFAULT_CPUS: '8', KILN_MAX_CPUS: '4' })).toThrow(
      /KILN_DEFAULT_CPUS/,
    );
  });
});

describe('loadConfig sections', () => {
  it('parses the egress section: defaults, and the operator exceptions and ceiling', () => {
    expect(loadConfig({}).egress).toMatchObject({
      allowedPorts: [80, 443],
      exceptions: [],
      hostsCeiling: ['*'],
      defaultHosts: ['*'],
    });
    const config = loadConfig({
      KILN_EGRESS_EXCEPTIONS: '127.0.0.1:4873',
      KILN_EGRESS_HOSTS_CEILING: '*.example.com,127.0.0.1',
    });
    expect(config.egress.exceptions).toEqual([{ host: '127.0.0.1', port: 4873 }]);
    expect(Object.isFrozen(config.egress.exceptions)).toBe(true);
  });

  it('names the variable of an egress problem found across variables, with the others', () => {
    let problems: readonly string[] = [];
    try {
      loadConfig({
        KILN_EGRESS_HOSTS_CEILING: '*.example.com',
        KILN_EGRESS_DEFAULT_HOSTS: 'evil.test',
        KILN_EGRESS_MAX_CONNECTIONS: '0',
      });
    } catch (err) {
      if (err instanceof ConfigError) problems = err.problems;
    }
    expect(problems).toEqual([expect.stringMatching(/^KILN_EGRESS_MAX_CONNECTIONS: /) as unknown]);
    try {
      loadConfig({
        KILN_EGRESS_HOSTS_CEILING: '*.example.com',
        KILN_EGRESS_DEFAULT_HOSTS: 'evil.test',
      });
    } catch (err) {
      if (err instanceof ConfigError) problems = err.problems;
    }
    expect(problems).toEqual([
      'KILN_EGRESS_DEFAULT_HOSTS: outside KILN_EGRESS_HOSTS_CEILING: evil.test',
    ]);
  });

  it('reports problems of different sections and the range checks in one error', () => {
    let error: unknown;
    try {
      loadConfig({ KILN_PUBLIC_URL: 'not a url', KILN_DEFAULT_CPUS: '8', KILN_VMM: 'xen' });
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).problems).toEqual([
      'KILN_PUBLIC_URL: must be an absolute URL',
      'KILN_DEFAULT_CPUS: must be <= KILN_MAX_CPUS',
      expect.stringMatching(/^KILN_VMM: /),
    ]);
  });

  it('brackets an IPv6 listen address in the default public URL', () => {
    expect(loadConfig({ KILN_HOST: '::1', KILN_PORT: '9000' }).server.publicUrl).toBe(
      'http://[::1]:9000',
    );
  });

  it('keeps only the origin of KILN_PUBLIC_URL and derives the cache and image dirs', () => {
    const config = loadConfig({
      KILN_PUBLIC_URL: 'https://kiln.example:8443/some/path',
      XDG_CACHE_HOME: '/var/cache/x',
    });
    expect(config.server.publicUrl).toBe('https://kiln.example:8443');
    expect(config.vm.cacheDir).toBe('/var/cache/x/kiln');
    expect(config.vm.imageDir).toBe('/var/cache/x/kiln/images/current');
  });
});

describe('loadConfig mirror section', () => {
  it('carries the mirror’s upstreams, defaulting to the four public registries', () => {
    expect(loadConfig({}).mirror.upstreams.map((u) => u.name)).toEqual([
      'docker.io',
      'ghcr.io',
      'quay.io',
      'registry.k8s.io',
    ]);
    const config = loadConfig({
      KILN_MIRROR_UPSTREAMS: 'docker.io=http://127.0.0.1:5001',
      KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io',
    });
    expect(config.mirror.upstreams).toEqual([
      { name: 'docker.io', endpoint: 'http://127.0.0.1:5001' },
    ]);
    expect(Object.isFrozen(config.mirror)).toBe(true);
    expect(loadConfig({ KILN_MIRROR_AIR_GAPPED: 'true' }).mirror.upstreams).toEqual([]);
  });

  it('reports mirror problems together with the other sections’', () => {
    let error: unknown;
    try {
      loadConfig({ KILN_VMM: 'xen', KILN_MIRROR_UPSTREAMS: 'dev=http://127.0.0.1:5001' });
    } catch (err) {
      error = err;
    }
    expect((error as ConfigError).problems).toEqual([
      expect.stringMatching(/^KILN_VMM: /),
      'KILN_MIRROR_UPSTREAMS: "dev" uses plain http; list it in KILN_MIRROR_INSECURE_UPSTREAMS to allow that',
    ]);
  });
});
