import { buildTags } from '../builds/build-repositories.js';
import type { Build } from '../builds/build.js';
import { accountTime } from '../builds/time-account.js';
import type { EgressSummary } from '../egress/egress-summary.js';

/** An egress build's traffic on the wire (docs/contracts.md#egress). */
function egressView(egress: EgressSummary | undefined): Record<string, unknown> | undefined {
  if (egress === undefined) return undefined;
  return {
    hosts: egress.hosts.map((h) => ({
      host: h.host,
      port: h.port,
      connections: h.connections,
      bytes_in: h.bytesIn,
      bytes_out: h.bytesOut,
    })),
    denied: egress.denied,
    denied_total: egress.deniedTotal,
    failed_connections: egress.failedConnections,
    bytes_in: egress.bytesIn,
    bytes_out: egress.bytesOut,
  };
}

/**
 * Where a build's seconds went, on the wire (docs/contracts.md#timings): every phase in
 * seconds and their total. While the build runs, the phases cover the time up to the start of
 * the current one and `total_seconds` is null.
 */
export function timingsView(build: Build): Record<string, unknown> {
  const account = accountTime(build.timings, build.finishedAt?.getTime() ?? null);
  return {
    phases: account.phases,
    total_seconds: account.totalSeconds,
    unaccounted_seconds: account.unaccountedSeconds,
    host_observed: account.hostObserved,
    guest_reported: account.guestReported,
    guest_scaled: account.guestScaled,
    after_finish: account.afterFinish,
    ...(account.legacy ? { legacy: true } : {}),
  };
}

/** The wire shape of a build (snake_case like the request fields); never the host paths. */
export function buildView(build: Build, queuePosition: number | null): Record<string, unknown> {
  return {
    id: build.id,
    tenant: build.tenant,
    status: build.status,
    queue_position: build.status === 'queued' ? queuePosition : null,
    repository: build.repository,
    tags: buildTags(build),
    cache_repository: build.cacheRepository,
    created_at: build.createdAt.toISOString(),
    started_at: build.startedAt?.toISOString() ?? null,
    finished_at: build.finishedAt?.toISOString() ?? null,
    attempts: build.attempts,
    request: {
      dockerfile: build.request.dockerfile,
      dockerfile_path: build.request.dockerfilePath,
      context_dir: build.request.contextDir,
      build_args: build.request.buildArgs,
      secrets: build.request.secretIds,
      build_secrets: build.request.buildSecretIds ?? [],
      cache_scope: build.request.cacheScope,
      timeout_seconds: build.request.timeoutSeconds,
      memory_mb: build.request.memoryMb,
      cpus: build.request.cpus,
      network_mode: build.request.networkMode,
      allowed_hosts: build.request.allowedHosts ?? null,
      image_name: build.request.imageName,
      image_tags: build.request.imageTags?.map((t) => `${t.name}:${t.tag}`) ?? null,
      engine: build.request.engine ?? null,
    },
    source: {
      size_bytes: build.source.sizeBytes,
      sha256: build.source.sha256,
      compression: build.source.compression,
      entries: build.source.entries,
      unpacked_bytes: build.source.unpackedBytes,
    },
    result: build.result
      ? {
          image_ref: build.result.imageRef,
          image_refs: build.result.imageRefs ?? [build.result.imageRef],
          image_digest: build.result.imageDigest,
          provenance: build.result.provenance,
          ...(build.result.egress === undefined ? {} : { egress: egressView(build.result.egress) }),
          ...(build.result.registry === undefined
            ? {}
            : {
                registry: {
                  base_images: build.result.registry.baseImages,
                  pushed_digest: build.result.registry.pushedDigest,
                  disagreements: build.result.registry.disagreements,
                },
              }),
        }
      : null,
    error: build.failure
      ? {
          code: build.failure.code,
          message: build.failure.message,
          log_tail: build.failure.logTail,
          ...(build.failure.egress === undefined
            ? {}
            : { egress: egressView(build.failure.egress) }),
        }
      : null,
    timings: timingsView(build),
  };
}
