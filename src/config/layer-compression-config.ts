import type { EngineLayerCompression, LayerCompression } from '../../common/protocol/build-job.js';

/**
 * The pushed layers' compression when KILN_LAYER_COMPRESSION is unset. gzip, although
 * bench/layer-compression.bench.ts measured zstd faster to push and smaller: gzip is the one
 * format every client pulls (docs/operations.md#layer-compression has the numbers and why).
 */
export const DEFAULT_LAYER_COMPRESSION: LayerCompression['format'] = 'gzip';

/** `Config['builds']['layerCompression']`: what was configured and what each engine does. */
export interface LayerCompressionConfig {
  /** KILN_LAYER_COMPRESSION and KILN_LAYER_COMPRESSION_LEVEL as set. */
  configured: LayerCompression;
  /** What each engine pushes for it: build.json `layerCompression`. */
  engines: EngineLayerCompression;
  /** Why an engine pushes other than configured (one build-log line), for those that do. */
  notes: Partial<Record<keyof EngineLayerCompression, string>>;
}

/**
 * Decides, once at start, what each engine really pushes for the configured compression.
 * BuildKit pushes every format as asked. Debian 12's Buildah (1.28, containers/image 5.23)
 * always compresses for a `docker://` destination (`--disable-compression` is ignored there,
 * containers/buildah#3904), so `none` becomes its cheapest gzip, level 1.
 */
export function resolveLayerCompression(configured: LayerCompression): LayerCompressionConfig {
  if (configured.format !== 'none') {
    const as = { format: configured.format, level: configured.level };
    return { configured, engines: { buildah: as, buildkit: as }, notes: {} };
  }
  return {
    configured,
    engines: { buildah: { format: 'gzip', level: 1 }, buildkit: configured },
    notes: {
      buildah:
        'KILN_LAYER_COMPRESSION=none: Buildah (1.28) cannot push uncompressed layers to a registry; pushing gzip level 1',
    },
  };
}
