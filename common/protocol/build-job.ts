/**
 * `build.json`, the non-secret description of one build that the host puts on the config
 * volume (docs/contracts.md#build-job). No tokens and no secret values ever appear here.
 * Written once as a zod schema: the host types what it writes with the inferred
 * {@link BuildJob}, the agent validates what it reads with {@link buildJobSchema}.
 *
 * The config volume is an uncompressed tar archive holding one regular file, `build.json`.
 * The source volume is the uploaded archive itself, possibly zero-padded at the end to a whole
 * number of 512-byte sectors: the agent reads exactly `source.sizeBytes` bytes and checks
 * `source.sha256` before unpacking.
 */
import { z } from 'zod';

/** Name of the one file the config volume holds; the host writes it and the agent reads it. */
export const BUILD_JOB_FILE = 'build.json';

const nonNegativeInt = z.number().int().nonnegative();

/** How the engine compresses the image layers it pushes (config KILN_LAYER_COMPRESSION). */
export const LAYER_COMPRESSION_FORMATS = ['gzip', 'zstd', 'none'] as const;
export type LayerCompressionFormat = (typeof LAYER_COMPRESSION_FORMATS)[number];

/** Levels each compressing format takes (both engines accept these ranges). */
export const LAYER_COMPRESSION_LEVELS = {
  gzip: { min: 1, max: 9 },
  zstd: { min: 1, max: 20 },
} as const satisfies Record<Exclude<LayerCompressionFormat, 'none'>, { min: number; max: number }>;

/** null: the engine's own default level for the format. Always null for `none`. */
const layerCompressionLevel = z.number().int().min(1).max(20).nullable();

export const layerCompressionSchema = z.object({
  format: z.enum(LAYER_COMPRESSION_FORMATS),
  level: layerCompressionLevel,
});
export type LayerCompression = z.infer<typeof layerCompressionSchema>;

/**
 * What each engine pushes, as the host decided it from the configured compression
 * (src/config/layer-compression-config.ts); the engine the guest runs applies its own entry as
 * it is. Buildah's has no `none`: Debian 12's Buildah always compresses for a registry.
 */
export const engineLayerCompressionSchema = z.object({
  buildah: z.object({ format: z.enum(['gzip', 'zstd']), level: layerCompressionLevel }),
  buildkit: layerCompressionSchema,
});
export type EngineLayerCompression = z.infer<typeof engineLayerCompressionSchema>;
const tagLike = z.string().regex(/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/);

export const buildJobSchema = z.object({
  version: z.literal(1),
  buildId: z.string().min(1).max(200),
  tenant: z.string().min(1).max(200),
  source: z.object({
    sizeBytes: nonNegativeInt,
    sha256: z.string().regex(/^[a-f0-9]{64}$/),
    compression: z.enum(['none', 'gzip', 'zstd']),
    /** Limits the guest re-checks while unpacking. */
    maxUnpackedBytes: nonNegativeInt,
    maxEntries: nonNegativeInt,
    maxPathBytes: nonNegativeInt,
  }),
  /** Sub-directory of the unpacked source used as the build context ('' = root). */
  contextDir: z.string().max(4096),
  /** Dockerfile path relative to the context (default "Dockerfile"); ignored when inline is set. */
  dockerfilePath: z.string().max(4096),
  /** Inline Dockerfile text, when the client sent one. */
  dockerfile: z.string().nullable(),
  buildArgs: z.record(z.string(), z.string()),
  /** Ids of the secrets the start message will carry values for. */
  secretIds: z.array(tagLike),
  registry: z.object({
    /** host:port the guest reaches the registry at (e.g. 10.0.2.100:5000). */
    host: z.string().min(1).max(300),
    /** Whether the guest talks plain HTTP to it (true for the in-VM forward). */
    insecure: z.boolean(),
    /** Repository the image is pushed to, e.g. "acme/web". */
    repository: z.string().min(1).max(300),
    /** Tags to push, e.g. ["b_abc…", "latest"]. */
    tags: z.array(tagLike).min(1),
    /**
     * References pushed besides `repository:tags`, in other repositories of the tenant
     * (`image_tags` naming several images), e.g. [{"repository": "acme/api", "tag": "v1"}].
     * Absent in jobs from hosts that predate it.
     */
    otherRefs: z
      .array(z.object({ repository: z.string().min(1).max(300), tag: tagLike }))
      .max(32)
      .optional(),
    /** Cache repository, e.g. "cache/acme/main", or null without cache_scope. */
    cacheRepository: z.string().min(1).max(300).nullable(),
    /**
     * The pull-through mirror: images of each upstream registry named here are pulled from
     * the Kiln registry as `<namespace>/<upstream>/<repository>` (e.g.
     * `mirror/docker.io/library/node`). `docker.io` is always listed, so images an operator
     * seeded into `library/` resolve even on an air-gapped host.
     */
    mirror: z.object({
      namespace: z.string().regex(/^[a-z0-9]+$/),
      upstreams: z.array(z.string().regex(/^[a-z0-9]+(?:[.-][a-z0-9]+)*$/)).max(100),
    }),
  }),
  /** "auto" picks BuildKit when present, else Buildah. */
  engine: z.enum(['auto', 'buildkit', 'buildah']),
  /**
   * BuildKit only: the Dockerfile frontend image (`<repository>:<tag>` in the Kiln registry,
   * config KILN_BUILDKIT_FRONTEND), or null for the built-in frontend. Absent from jobs
   * written before it existed, which count as null.
   */
  buildkitFrontend: z
    .string()
    .max(300)
    .nullable()
    .optional()
    .transform((v) => v ?? null),
  /**
   * The pushed layers' compression, per engine. Absent from jobs written before it existed,
   * which keep what those hosts got: gzip at the engine's default level.
   */
  layerCompression: engineLayerCompressionSchema.optional().transform(
    (v) =>
      v ?? {
        buildah: { format: 'gzip' as const, level: null },
        buildkit: { format: 'gzip' as const, level: null },
      },
  ),
  networkMode: z.enum(['isolated', 'egress']),
  /**
   * `egress` builds only: the host's filtering proxy as the guest reaches it, which build
   * steps get as the engines' predefined proxy arguments (HTTP_PROXY, HTTPS_PROXY, NO_PROXY,
   * upper and lower case). `noProxy` names the registry host, which is reached directly.
   */
  egressProxy: z
    .object({
      url: z
        .string()
        .regex(/^http:\/\/[^/\s]+$/)
        .max(300),
      noProxy: z.string().max(1000),
    })
    .nullable(),
  resources: z.object({ memoryMb: nonNegativeInt, cpus: nonNegativeInt }),
  /**
   * Present when the VM has a `kiln-cache` disk: the engine keeps its state on it and prunes
   * that state when the disk is fuller than `gcThresholdPercent`. Null without a cache disk.
   */
  cache: z.object({ gcThresholdPercent: z.number().int().min(1).max(100) }).nullable(),
});

export type BuildJob = z.infer<typeof buildJobSchema>;

/**
 * The engine a job runs under, of those a guest has (listed best first): the one the job
 * names, or for "auto" the best; undefined when the guest lacks it. The agent runs this one,
 * and the host names it in what it logs about the run.
 */
export function pickEngineName<T extends string>(
  wanted: BuildJob['engine'],
  present: readonly T[],
): T | undefined {
  return wanted === 'auto' ? present[0] : present.find((name) => name === wanted);
}
