import { describe, expect, it } from 'vitest';
import { buildJobSchema } from '../../common/protocol/build-job.js';
import { DEFAULT_LAYER_COMPRESSION } from '../../src/config/build-config.js';
import { ConfigError, loadConfig } from '../../src/config/config.js';
import { createBuildJob } from '../../src/vm/build-job-factory.js';
import { makeTestBuild } from '../vm/vm-test-build.js';

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
  it('defaults to the measured format at the engine’s own level', () => {
    expect(loadConfig({}).builds.layerCompression).toEqual({
      format: DEFAULT_LAYER_COMPRESSION,
      level: null,
    });
  });

  it('takes gzip, zstd or none, with a level for the compressing ones', () => {
    expect(loadConfig({ KILN_LAYER_COMPRESSION: 'none' }).builds.layerCompression).toEqual({
      format: 'none',
      level: null,
    });
    expect(
      loadConfig({ KILN_LAYER_COMPRESSION: 'zstd', KILN_LAYER_COMPRESSION_LEVEL: '19' }).builds
        .layerCompression,
    ).toEqual({ format: 'zstd', level: 19 });
    expect(
      loadConfig({ KILN_LAYER_COMPRESSION: ' gzip ', KILN_LAYER_COMPRESSION_LEVEL: '1' }).builds
        .layerCompression,
    ).toEqual({ format: 'gzip', level: 1 });
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
  const options = {
    guestRegistryAddress: '10.0.2.100:5000',
    guestEgressProxyAddress: '10.0.2.100:3128',
    limits: { maxUnpackedBytes: 5000, maxEntries: 10, maxPathBytes: 255 },
    mirrorUpstreams: [],
  };

  it('carries the configured compression to the guest, and the default without one', () => {
    const job = createBuildJob(makeTestBuild(), {
      ...options,
      layerCompression: { format: 'zstd', level: 3 },
    });
    expect(buildJobSchema.parse(job).layerCompression).toEqual({ format: 'zstd', level: 3 });
    expect(createBuildJob(makeTestBuild(), options).layerCompression).toEqual({
      format: DEFAULT_LAYER_COMPRESSION,
      level: null,
    });
  });

  it('reads a job from a host that predates the field as gzip at the engine’s level', () => {
    const { layerCompression: _, ...old } = createBuildJob(makeTestBuild(), options);
    expect(buildJobSchema.parse(old).layerCompression).toEqual({ format: 'gzip', level: null });
  });
});
