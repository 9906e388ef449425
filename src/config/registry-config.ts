import { z } from 'zod';
import { envBytes, envInt, envString } from './env-schema.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

/** The built-in OCI registry served under /v2: its KILN_* variables and `Config['registry']`. */
export const registryConfigSchema = z
  .object({
    /** The `service` named in WWW-Authenticate challenges and registry token audiences. */
    KILN_REGISTRY_SERVICE: envString('kiln'),
    KILN_MAX_MANIFEST_BYTES: envBytes(4 * MiB, 4096, 256 * MiB),
    /** Largest blob (a layer): every upload, monolithic or chunked, stops there with 413. */
    KILN_MAX_BLOB_BYTES: envBytes(16 * GiB, 1024, 4096 * GiB),
    /** Largest `/v2/token` form body (POST, OAuth2 password grant). */
    KILN_MAX_TOKEN_BODY_BYTES: envBytes(64 * 1024, 1024, 16 * MiB),
    /** Seconds an idle upload session lives before it and its file are removed. */
    KILN_UPLOAD_SESSION_TTL_SECONDS: envInt(3600, 10, 7 * 86_400),
    /** Lifetime of tokens handed out by /v2/token. */
    KILN_REGISTRY_TOKEN_TTL_SECONDS: envInt(900, 30, 86_400),
    /**
     * Seconds a blob no manifest references must have gone untouched (not found for any
     * client, not stored) before garbage collection removes it.
     */
    KILN_REGISTRY_GC_GRACE_SECONDS: envInt(3600, 0, 30 * 86_400),
    /** Seconds between garbage-collection sweeps. */
    KILN_REGISTRY_GC_INTERVAL_SECONDS: envInt(600, 10, 86_400),
  })
  .transform((env) => ({
    service: env.KILN_REGISTRY_SERVICE,
    maxManifestBytes: env.KILN_MAX_MANIFEST_BYTES,
    maxBlobBytes: env.KILN_MAX_BLOB_BYTES,
    maxTokenBodyBytes: env.KILN_MAX_TOKEN_BODY_BYTES,
    uploadSessionTtlSeconds: env.KILN_UPLOAD_SESSION_TTL_SECONDS,
    tokenTtlSeconds: env.KILN_REGISTRY_TOKEN_TTL_SECONDS,
    gcGraceSeconds: env.KILN_REGISTRY_GC_GRACE_SECONDS,
    gcIntervalSeconds: env.KILN_REGISTRY_GC_INTERVAL_SECONDS,
  }));
