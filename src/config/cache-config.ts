import { z } from 'zod';
import { envBytes, envInt } from './env-schema.js';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/**
 * Persistent cache disks (docs/architecture.md#cache-disks): the KILN_* variables and
 * `Config['caches']`. A disk's size is fixed when it is created: the build's `cache_size_mb`
 * when it names one (at most the ceiling), else the default.
 */
export const cacheConfigSchema = z
  .object({
    /** `false` turns cache disks off: every build gets a scratch disk only, as without a scope. */
    KILN_CACHE_DISKS: z
      .enum(['true', 'false'])
      .optional()
      .transform((v) => v !== 'false'),
    KILN_CACHE_DISK_BYTES: envBytes(10 * GiB, 256 * MiB, 4096 * GiB),
    KILN_CACHE_DISK_MAX_BYTES: envBytes(50 * GiB, 256 * MiB, 4096 * GiB),
    /** The engine prunes its state when the disk is fuller than this (percent). */
    KILN_CACHE_GC_PERCENT: envInt(80, 10, 99),
  })
  .superRefine((env, ctx) => {
    if (
      Number.isInteger(env.KILN_CACHE_DISK_BYTES) &&
      Number.isInteger(env.KILN_CACHE_DISK_MAX_BYTES) &&
      env.KILN_CACHE_DISK_BYTES > env.KILN_CACHE_DISK_MAX_BYTES
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['KILN_CACHE_DISK_BYTES'],
        message: 'must be <= KILN_CACHE_DISK_MAX_BYTES',
      });
    }
  })
  .transform((env) => ({
    enabled: env.KILN_CACHE_DISKS,
    defaultSizeBytes: env.KILN_CACHE_DISK_BYTES,
    maxSizeBytes: env.KILN_CACHE_DISK_MAX_BYTES,
    gcThresholdPercent: env.KILN_CACHE_GC_PERCENT,
  }));
