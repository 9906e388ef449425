/**
 * `build.json`, the non-secret description of one build that the host puts on the config volume
 * (docs/contracts.md#build-job). No tokens and no secret values ever appear here.
 *
 * The config volume is an uncompressed tar archive holding one regular file, `build.json`.
 * The source volume is the uploaded archive itself, possibly zero-padded at the end to a whole
 * number of 512-byte sectors: the agent reads exactly `source.sizeBytes` bytes and checks
 * `source.sha256` before unpacking.
 */
/** Name of the one file the config volume holds; the host writes it and the agent reads it. */
export const BUILD_JOB_FILE = 'build.json';

export interface BuildJob {
  version: 1;
  buildId: string;
  tenant: string;
  source: {
    sizeBytes: number;
    sha256: string;
    compression: 'none' | 'gzip' | 'zstd';
    /** Limits the guest re-checks while unpacking. */
    maxUnpackedBytes: number;
    maxEntries: number;
    maxPathBytes: number;
  };
  /** Sub-directory of the unpacked source used as the build context ('' = root). */
  contextDir: string;
  /** Dockerfile path relative to the context (default "Dockerfile"); ignored when inline is set. */
  dockerfilePath: string;
  /** Inline Dockerfile text, when the client sent one. */
  dockerfile: string | null;
  buildArgs: Record<string, string>;
  /** Ids of the secrets the start message will carry values for. */
  secretIds: string[];
  registry: {
    /** host:port the guest reaches the registry at (e.g. 10.0.2.100:5000). */
    host: string;
    /** Whether the guest talks plain HTTP to it (true for the in-VM forward). */
    insecure: boolean;
    /** Repository the image is pushed to, e.g. "acme/web". */
    repository: string;
    /** Tags to push, e.g. ["b_abc…", "latest"]. */
    tags: string[];
    /** Cache repository, e.g. "cache/acme/main", or null without cache_scope. */
    cacheRepository: string | null;
    /** Namespace docker.io is mirrored to in the Kiln registry (e.g. "library"). */
    dockerHubMirrorNamespace: string;
  };
  /** "auto" picks BuildKit when present, else Buildah. */
  engine: 'auto' | 'buildkit' | 'buildah';
  networkMode: 'isolated' | 'egress';
  resources: { memoryMb: number; cpus: number };
}
