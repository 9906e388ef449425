import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { createBuildJob } from '../../src/vm/build-job-factory.js';
import { makeTestBuild, TEST_JOB_OPTIONS } from '../vm/vm-test-build.js';

describe('KILN_BUILDKIT_FRONTEND', () => {
  it('defaults to the built-in frontend, also when set to builtin', () => {
    expect(loadConfig({}).buildkit.frontendImage).toBeNull();
    expect(loadConfig({ KILN_BUILDKIT_FRONTEND: 'builtin' }).buildkit.frontendImage).toBeNull();
  });

  it('takes an image in the Kiln registry by tag or digest', () => {
    expect(
      loadConfig({ KILN_BUILDKIT_FRONTEND: 'library/dockerfile:1.9' }).buildkit.frontendImage,
    ).toBe('library/dockerfile:1.9');
    const digest = `library/dockerfile@sha256:${'a'.repeat(64)}`;
    expect(loadConfig({ KILN_BUILDKIT_FRONTEND: digest }).buildkit.frontendImage).toBe(digest);
  });

  it('refuses a registry host, a missing tag or a bad name, naming the variable', () => {
    for (const value of [
      'http://registry/dockerfile:1',
      'library/dockerfile',
      'Library/X:1',
      '/dockerfile:1',
    ]) {
      let error: unknown;
      try {
        loadConfig({ KILN_BUILDKIT_FRONTEND: value });
      } catch (err) {
        error = err;
      }
      expect(error, value).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.join('\n')).toMatch(/^KILN_BUILDKIT_FRONTEND: /);
    }
  });
});

describe('build.json for BuildKit', () => {
  const options = TEST_JOB_OPTIONS;

  it('names the frontend image, or null for the built-in one, and the engine the build asked for', () => {
    expect(createBuildJob(makeTestBuild(), options).buildkitFrontend).toBeNull();
    expect(
      createBuildJob(makeTestBuild(), { ...options, buildkitFrontend: 'library/dockerfile:1.9' })
        .buildkitFrontend,
    ).toBe('library/dockerfile:1.9');
    const build = makeTestBuild();
    expect(createBuildJob(build, options).engine).toBe('auto');
    expect(
      createBuildJob({ ...build, request: { ...build.request, engine: 'buildah' } }, options)
        .engine,
    ).toBe('buildah');
  });
});
