import { z } from 'zod';
import { envBytes, envEnum, envInt, envOptionalInt } from './env-schema.js';
import { DEFAULT_LAYER_COMPRESSION, resolveLayerCompression } from './layer-compression-config.js';
import {
  LAYER_COMPRESSION_FORMATS,
  LAYER_COMPRESSION_LEVELS,
} from '../../common/protocol/build-job.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/**
 * Upload limits, queue policy, resource ranges and the per-build log cap: the KILN_* variables
 * and `Config['builds']`. A default must lie inside its range.
 */
export const buildConfigSchema = z
  .object({
    KILN_MAX_CONCURRENT_BUILDS: envInt(2, 1, 1024),
    /** Most builds one tenant may have running at once; 0 = no cap beyond the global one. */
    KILN_MAX_RUNNING_PER_TENANT: envInt(0, 0, 1024),
    /** Most builds one tenant may have queued; 0 = unlimited. */
    KILN_MAX_QUEUED_PER_TENANT: envInt(100, 0, 1_000_000),
    /** Seconds a build may wait in the queue before it fails with queue_timeout. */
    KILN_QUEUE_TIMEOUT_SECONDS: envInt(3600, 1, 7 * 24 * 3600),
    KILN_MAX_SOURCE_BYTES: envBytes(2 * GiB, 1024, 1024 * GiB),
    /** Uploads one tenant may have being received and inspected at once (429 above). */
    KILN_MAX_UPLOADS_PER_TENANT: envInt(2, 1, 1024),
    /** Uploads being received and inspected at once in all (429 above). */
    KILN_MAX_CONCURRENT_UPLOADS: envInt(8, 1, 4096),
    KILN_MAX_UNPACKED_BYTES: envBytes(8 * GiB, 1024, 4096 * GiB),
    KILN_MAX_SOURCE_ENTRIES: envInt(200_000, 1, 100_000_000),
    KILN_MAX_PATH_BYTES: envInt(4096, 16, 65_536),
    KILN_DEFAULT_TIMEOUT_SECONDS: envInt(1800, 10, 86_400),
    KILN_MAX_TIMEOUT_SECONDS: envInt(7200, 10, 7 * 86_400),
    KILN_DEFAULT_MEMORY_MB: envInt(2048, 256, 1_048_576),
    KILN_MIN_MEMORY_MB: envInt(512, 128, 1_048_576),
    KILN_MAX_MEMORY_MB: envInt(8192, 256, 1_048_576),
    KILN_DEFAULT_CPUS: envInt(2, 1, 256),
    KILN_MAX_CPUS: envInt(4, 1, 256),
    /** Bytes of log kept per build; past it a truncation marker is stored once. */
    KILN_MAX_LOG_BYTES: envBytes(16 * MiB, 4096, 4 * GiB),
    /** How the engines compress the layers they push (gzip, zstd or none). */
    KILN_LAYER_COMPRESSION: envEnum(LAYER_COMPRESSION_FORMATS, DEFAULT_LAYER_COMPRESSION),
    /** Its level (gzip 1-9, zstd 1-20, checked below per format); unset: the engine's default. */
    KILN_LAYER_COMPRESSION_LEVEL: envOptionalInt(1, 99),
  })
  .superRefine((env, ctx) => {
    // Runs even when a bound failed its own check: compare only values that parsed.
    type Bound = Exclude<
      keyof typeof env,
      'KILN_LAYER_COMPRESSION' | 'KILN_LAYER_COMPRESSION_LEVEL'
    >;
    const atMost = (lower: Bound, upper: Bound) => {
      const [low, high] = [env[lower], env[upper]];
      if (Number.isInteger(low) && Number.isInteger(high) && low > high) {
        ctx.addIssue({ code: 'custom', path: [lower], message: `must be <= ${upper}` });
      }
    };
    atMost('KILN_MIN_MEMORY_MB', 'KILN_DEFAULT_MEMORY_MB');
    atMost('KILN_DEFAULT_MEMORY_MB', 'KILN_MAX_MEMORY_MB');
    atMost('KILN_DEFAULT_CPUS', 'KILN_MAX_CPUS');
    atMost('KILN_DEFAULT_TIMEOUT_SECONDS', 'KILN_MAX_TIMEOUT_SECONDS');
    atMost('KILN_MAX_UPLOADS_PER_TENANT', 'KILN_MAX_CONCURRENT_UPLOADS');
    const [format, level] = [env.KILN_LAYER_COMPRESSION, env.KILN_LAYER_COMPRESSION_LEVEL];
    if (level !== undefined && Number.isInteger(level) && typeof format === 'string') {
      const path = ['KILN_LAYER_COMPRESSION_LEVEL'];
      if (format === 'none') {
        ctx.addIssue({
          code: 'custom',
          path,
          message: 'must be unset when KILN_LAYER_COMPRESSION=none',
        });
      } else if (LAYER_COMPRESSION_FORMATS.includes(format)) {
        const { min, max } = LAYER_COMPRESSION_LEVELS[format];
        if (level < min || level > max) {
          ctx.addIssue({ code: 'custom', path, message: `must be ${min}-${max} for ${format}` });
        }
      }
    }
  })
  .transform((env) => ({
    maxConcurrent: env.KILN_MAX_CONCURRENT_BUILDS,
    maxRunningPerTenant: env.KILN_MAX_RUNNING_PER_TENANT,
    maxQueuedPerTenant: env.KILN_MAX_QUEUED_PER_TENANT,
    queueTimeoutSeconds: env.KILN_QUEUE_TIMEOUT_SECONDS,
    maxSourceBytes: env.KILN_MAX_SOURCE_BYTES,
    maxUploadsPerTenant: env.KILN_MAX_UPLOADS_PER_TENANT,
    maxConcurrentUploads: env.KILN_MAX_CONCURRENT_UPLOADS,
    maxUnpackedBytes: env.KILN_MAX_UNPACKED_BYTES,
    maxSourceEntries: env.KILN_MAX_SOURCE_ENTRIES,
    maxPathBytes: env.KILN_MAX_PATH_BYTES,
    defaultTimeoutSeconds: env.KILN_DEFAULT_TIMEOUT_SECONDS,
    maxTimeoutSeconds: env.KILN_MAX_TIMEOUT_SECONDS,
    defaultMemoryMb: env.KILN_DEFAULT_MEMORY_MB,
    minMemoryMb: env.KILN_MIN_MEMORY_MB,
    maxMemoryMb: env.KILN_MAX_MEMORY_MB,
    defaultCpus: env.KILN_DEFAULT_CPUS,
    maxCpus: env.KILN_MAX_CPUS,
    maxLogBytes: env.KILN_MAX_LOG_BYTES,
    layerCompression: resolveLayerCompression({
      format: env.KILN_LAYER_COMPRESSION,
      level: env.KILN_LAYER_COMPRESSION_LEVEL ?? null,
    }),
  }));
