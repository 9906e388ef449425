import type { BuildJob, EngineLayerCompression } from '../../common/protocol/build-job.js';
import { MIRROR_NAMESPACE } from '../auth/scopes.js';
import { buildReferences, buildTags } from '../builds/build-repositories.js';
import type { Build } from '../builds/build.js';
import {
  DEFAULT_LAYER_COMPRESSION,
  resolveLayerCompression,
} from '../config/layer-compression-config.js';

/**
 * Always mapped through the mirror, configured or not: images an operator seeded into
 * `library/` are served as `mirror/docker.io/library/…` even on an air-gapped host.
 */
const DOCKER_HUB = 'docker.io';

/**
 * Builds `build.json` for one build (common/protocol/build-job.ts). Only non-secret facts: the
 * registry token and secret values travel over the agent channel in `start`, never here.
 */
export function createBuildJob(
  build: Build,
  options: {
    guestRegistryAddress: string;
    /** host:port of the egress proxy forward in the guest; used for `egress` builds. */
    guestEgressProxyAddress: string;
    limits: { maxUnpackedBytes: number; maxEntries: number; maxPathBytes: number };
    /** The configured upstream registries' names (config.mirror.upstreams). */
    mirrorUpstreams: readonly string[];
    engine?: BuildJob['engine'];
    /** config.buildkit.frontendImage: a frontend image in the Kiln registry, or null. */
    buildkitFrontend?: string | null;
    /**
     * What each engine pushes (config.builds.layerCompression.engines); absent: the default
     * format at the engine's level.
     */
    layerCompression?: EngineLayerCompression;
    /** Set when the VM gets a cache disk. */
    cache?: BuildJob['cache'];
  },
): BuildJob {
  const { request } = build;
  return {
    version: 1,
    buildId: build.id,
    tenant: build.tenant,
    source: {
      sizeBytes: build.source.sizeBytes,
      sha256: build.source.sha256,
      compression: build.source.compression,
      maxUnpackedBytes: options.limits.maxUnpackedBytes,
      maxEntries: options.limits.maxEntries,
      maxPathBytes: options.limits.maxPathBytes,
    },
    contextDir: request.contextDir,
    dockerfilePath: request.dockerfilePath,
    dockerfile: request.dockerfile,
    buildArgs: { ...request.buildArgs },
    secretIds: [...request.secretIds, ...(request.buildSecretIds ?? [])],
    registry: {
      host: options.guestRegistryAddress,
      insecure: true,
      repository: build.repository,
      tags: buildTags(build),
      otherRefs: buildReferences(build).filter((r) => r.repository !== build.repository),
      cacheRepository: build.cacheRepository,
      mirror: {
        namespace: MIRROR_NAMESPACE,
        upstreams: [...new Set([DOCKER_HUB, ...options.mirrorUpstreams])],
      },
    },
    engine: request.engine ?? options.engine ?? 'auto',
    buildkitFrontend: options.buildkitFrontend ?? null,
    layerCompression:
      options.layerCompression ??
      resolveLayerCompression({ format: DEFAULT_LAYER_COMPRESSION, level: null }).engines,
    networkMode: request.networkMode,
    egressProxy:
      request.networkMode === 'egress'
        ? {
            url: `http://${options.guestEgressProxyAddress}`,
            noProxy: hostOf(options.guestRegistryAddress),
          }
        : null,
    resources: { memoryMb: request.memoryMb, cpus: request.cpus },
    cache: options.cache ?? null,
  };
}

/** The host part of `host:port` (IPv6 in brackets kept as the host). */
function hostOf(address: string): string {
  const colon = address.lastIndexOf(':');
  return colon < 0 ? address : address.slice(0, colon);
}
