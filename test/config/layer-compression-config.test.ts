import { describe, expect, it } from 'vitest';
import { buildJobSchema } from '../../common/protocol/build-job.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import {
  DEFAULT_LAYER_COMPRESSION,
  resolveLayerCompression,
} from '../../src/config/layer-compression-config.js';
import { createBuildJob } from '../../src/vm/build-job-factory.js';
import { makeTestBuild, TEST_JOB_OPTIONS } from '../vm/vm-test-build.js';

function problemsOf(env: Record<string, string>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
  return [];
}

describe('KILN_LAYER_COMPRESSION', () => {
  const configured = (env: Record<string, string>) =>
    loadConfig(env).builds.layerCompression.configured;

  it('defaults to the measured format at the engine’s own level', () => {
    expect(configured({})).toEqual({ format: DEFAULT_LAYER_COMPRESSION, level: null });
  });

  it('takes gzip, zstd or none, with a level for the compressing ones', () => {
    expect(configured({ KILN_LAYER_COMPRESSION: 'none' })).toEqual({ format: 'none', level: null });
    expect(
      configured({ KILN_LAYER_COMPRESSION: 'zstd', KILN_LAYER_COMPRESSION_LEVEL: '19' }),
    ).toEqual({ format: 'zstd', level: 19 });
    expect(
      configured({ KILN_LAYER_COMPRESSION: ' gzip ', KILN_LAYER_COMPRESSION_LEVEL: '1' }),
    ).toEqual({ format: 'gzip', level: 1 });
  });

  it('has both engines push a compressing format as configured, with no note', () => {
    expect(
      loadConfig({ KILN_LAYER_COMPRESSION: 'zstd', KILN_LAYER_COMPRESSION_LEVEL: '19' }).builds
        .layerCompression,
    ).toEqual({
      configured: { format: 'zstd', level: 19 },
      engines: { buildah: { format: 'zstd', level: 19 }, buildkit: { format: 'zstd', level: 19 } },
      notes: {},
    });
  });

  it('resolves none to gzip level 1 for Buildah, which cannot push uncompressed, and says why; BuildKit pushes it uncompressed', () => {
    const { engines, notes } = loadConfig({ KILN_LAYER_COMPRESSION: 'none' }).builds
      .layerCompression;
    expect(engines).toEqual({
      buildah: { format: 'gzip', level: 1 },
      buildkit: { format: 'none', level: null },
    });
    expect(notes.buildkit).toBeUndefined();
    expect(notes.buildah).toMatch(/^KILN_LAYER_COMPRESSION=none: .*pushing gzip level 1$/);
  });

  it('refuses an unknown format, naming the variable and the choices', () => {
    expect(problemsOf({ KILN_LAYER_COMPRESSION: 'brotli' })).toEqual([
      'KILN_LAYER_COMPRESSION: must be one of gzip, zstd, none',
    ]);
  });

  it('refuses a level outside the format’s range, a level for none, and a level that is no number', () => {
    expect(
      problemsOf({ KILN_LAYER_COMPRESSION: 'gzip', KILN_LAYER_COMPRESSION_LEVEL: '12' }),
    ).toEqual(['KILN_LAYER_COMPRESSION_LEVEL: must be 1-9 for gzip']);
    expect(
      problemsOf({ KILN_LAYER_COMPRESSION: 'zstd', KILN_LAYER_COMPRESSION_LEVEL: '21' }),
    ).toEqual(['KILN_LAYER_COMPRESSION_LEVEL: must be 1-20 for zstd']);
    expect(
      problemsOf({ KILN_LAYER_COMPRESSION: 'none', KILN_LAYER_COMPRESSION_LEVEL: '3' }),
    ).toEqual(['KILN_LAYER_COMPRESSION_LEVEL: must be unset when KILN_LAYER_COMPRESSION=none']);
    expect(problemsOf({ KILN_LAYER_COMPRESSION_LEVEL: 'fast' })).toEqual([
      'KILN_LAYER_COMPRESSION_LEVEL: must be a whole number',
    ]);
    expect(problemsOf({ KILN_LAYER_COMPRESSION_LEVEL: '0' })[0]).toMatch(
      /^KILN_LAYER_COMPRESSION_LEVEL: /,
    );
  });
});

describe('build.json layerCompression', () => {
  const options = TEST_JOB_OPTIONS;

  it('carries what each engine pushes to the guest, and the default without it', () => {
    const { engines } = resolveLayerCompression({ format: 'none', level: null });
    const job = createBuildJob(makeTestBuild(), { ...options, layerCompression: engines });
    expect(buildJobSchema.parse(job).layerCompression).toEqual({
      buildah: { format: 'gzip', level: 1 },
      buildkit: { format: 'none', level: null },
    });
    const gzip = { format: DEFAULT_LAYER_COMPRESSION, level: null };
    expect(createBuildJob(makeTestBuild(), options).layerCompression).toEqual({
      buildah: gzip,
      buildkit: gzip,
    });
  });

  it('refuses a job that asks Buildah to push uncompressed', () => {
    const job = createBuildJob(makeTestBuild(), options);
    const none = { format: 'none', level: null };
    expect(
      buildJobSchema.safeParse({ ...job, layerCompression: { buildah: none, buildkit: none } })
        .success,
    ).toBe(false);
  });

  it('reads a job from a host that predates the field as gzip at the engine’s level', () => {
    const { layerCompression: _, ...old } = createBuildJob(makeTestBuild(), options);
    const gzip = { format: 'gzip', level: null };
    expect(buildJobSchema.parse(old).layerCompression).toEqual({ buildah: gzip, buildkit: gzip });
  });
});
