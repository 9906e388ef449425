import { describe, expect, it } from 'vitest';
import { engineRequest } from './engine-request-fixture.js';
import { proxyBuildArgs } from '../../agent/build/proxy-build-args.js';
import { buildahBuildArgv, buildahEnv, buildahPaths } from '../../agent/engines/buildah-engine.js';
import { buildkitBuildArgv, buildkitEnv } from '../../agent/engines/buildkit-engine.js';

const proxy = { url: 'http://10.0.2.100:3128', noProxy: '10.0.2.100' };
const expected = {
  HTTP_PROXY: 'http://10.0.2.100:3128',
  http_proxy: 'http://10.0.2.100:3128',
  HTTPS_PROXY: 'http://10.0.2.100:3128',
  https_proxy: 'http://10.0.2.100:3128',
  NO_PROXY: '10.0.2.100',
  no_proxy: '10.0.2.100',
};

describe('proxyBuildArgs', () => {
  it('is empty without a proxy (isolated mode)', () => {
    expect(proxyBuildArgs(null)).toEqual({});
  });

  it('names the proxy for HTTP and HTTPS and the registry as NO_PROXY, upper and lower case', () => {
    expect(proxyBuildArgs(proxy)).toEqual(expected);
  });
});

describe('the proxy reaches build steps as predefined build args, never the engine environment', () => {
  const request = engineRequest({
    buildArgs: { NODE_ENV: 'production', ...proxyBuildArgs(proxy) },
  });

  it('under Buildah: --build-arg for each, none in the environment', () => {
    const argv = buildahBuildArgv('buildah', request, buildahPaths(request), 'vfs');
    for (const [name, value] of Object.entries(expected)) {
      expect(argv.join('\n')).toContain(`--build-arg\n${name}=${value}`);
    }
    const env = buildahEnv(request, {});
    expect(Object.keys(env).filter((k) => /_proxy$/i.test(k))).toEqual([]);
  });

  it('under BuildKit: --opt build-arg: for each, none in the environment', () => {
    const argv = buildkitBuildArgv(
      'buildctl',
      'unix:///run/user/1000/buildkit/buildkitd.sock',
      request,
      '/m.json',
    );
    for (const [name, value] of Object.entries(expected)) {
      expect(argv.join('\n')).toContain(`--opt\nbuild-arg:${name}=${value}`);
    }
    const env = buildkitEnv(request, {});
    expect(Object.keys(env).filter((k) => /_proxy$/i.test(k))).toEqual([]);
  });
});
