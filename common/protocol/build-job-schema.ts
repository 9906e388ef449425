import { z } from 'zod';
import type { BuildJob } from './build-job.js';

const nonNegativeInt = z.number().int().nonnegative();

/** Validates build.json (see {@link BuildJob}) as the guest reads it. */
export const buildJobSchema = z.object({
  version: z.literal(1),
  buildId: z.string().min(1).max(200),
  tenant: z.string().min(1).max(200),
  source: z.object({
    sizeBytes: nonNegativeInt,
    sha256: z.string().regex(/^[a-f0-9]{64}$/),
    compression: z.enum(['none', 'gzip', 'zstd']),
    maxUnpackedBytes: nonNegativeInt,
    maxEntries: nonNegativeInt,
    maxPathBytes: nonNegativeInt,
  }),
  contextDir: z.string().max(4096),
  dockerfilePath: z.string().max(4096),
  dockerfile: z.string().nullable(),
  buildArgs: z.record(z.string(), z.string()),
  secretIds: z.array(z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)),
  registry: z.object({
    host: z.string().min(1).max(300),
    insecure: z.boolean(),
    repository: z.string().min(1).max(300),
    tags: z.array(z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/)).min(1),
    cacheRepository: z.string().min(1).max(300).nullable(),
    dockerHubMirrorNamespace: z.string().min(1).max(200),
  }),
  engine: z.enum(['auto', 'buildkit', 'buildah']),
  networkMode: z.enum(['isolated', 'egress']),
  resources: z.object({ memoryMb: nonNegativeInt, cpus: nonNegativeInt }),
}) satisfies z.ZodType<BuildJob>;
