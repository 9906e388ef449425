import type { Logger } from 'pino';
import { MIRROR_NAMESPACE } from '../../auth/scopes.js';
import type { BlobCollector } from '../blob-collector.js';
import { parseManifest } from '../manifest-document.js';
import type { ManifestEntry, RegistryStore } from '../registry-store.js';

/** What one eviction run found and removed. */
export interface EvictionReport {
  /** Bytes the limit counted before the run (RegistryStore.mirrorUsageBytes). */
  usageBytes: number;
  evictedManifests: number;
  evictedBlobs: number;
  /** Bytes of the evicted manifests and blobs. */
  evictedBytes: number;
}

/** What a MirrorEvictor needs. */
export interface MirrorEvictorOptions {
  store: RegistryStore;
  /** Removes blob rows and files with the garbage collector's grace and in-flight checks. */
  collector: BlobCollector;
  /** Bytes of mirrored content kept; 0 = no limit. */
  maxBytes: number;
  /** Manifests served to builds in flight (BuildRegistryRecord.servedManifests). */
  inFlight: () => readonly { repository: string; digest: string }[];
  /**
   * A later use of a manifest than the stored `used_at`, not written yet (the mirror writes a
   * manifest's use at most once a minute: RegistryMirror.unwrittenUse); null when none.
   */
  unwrittenUse?: (repository: string, digest: string) => Date | null;
  logger: Logger;
  /** Told of every run that evicted something (for /metrics). */
  onEvicted?: (report: EvictionReport) => void;
}

const MIRROR_PREFIX = `${MIRROR_NAMESPACE}/`;

function keyOf(repository: string, digest: string): string {
  return `${repository}@${digest}`;
}

/**
 * Keeps the mirror under its size limit by least-recently-used eviction. The limit counts the
 * blobs only mirrored repositories hold and the mirror's manifests (content an operator or a
 * tenant pushed is never counted nor removed). Over the limit, mirrored manifests (with their
 * tags) are evicted in order of last use until the blobs they alone referenced bring the count
 * under it; those blobs are then removed by the garbage collector's own checks. Kept whatever
 * the limit: a manifest or blob used within the GC grace period, a blob being read or
 * arriving, a manifest served to a build in flight and the platform manifests of such an
 * index. So the limit may be exceeded by what was pulled within one grace period. An evicted
 * image is fetched from its upstream again on the next pull.
 */
export class MirrorEvictor {
  constructor(private readonly o: MirrorEvictorOptions) {}

  /** True when a limit is set and mirrored content exceeds it. */
  overLimit(): boolean {
    return this.o.maxBytes > 0 && this.o.store.mirrorUsageBytes() > this.o.maxBytes;
  }

  /** One run: nothing happens under the limit (or without one). */
  async evict(): Promise<EvictionReport> {
    const { store, collector, maxBytes, logger } = this.o;
    const usageBytes = store.mirrorUsageBytes();
    const report: EvictionReport = {
      usageBytes,
      evictedManifests: 0,
      evictedBlobs: 0,
      evictedBytes: 0,
    };
    if (maxBytes === 0 || usageBytes <= maxBytes) return report;
    const cutoff = collector.graceCutoff();
    const plan = this.evictManifests(usageBytes, cutoff);
    if (plan === null) return report;
    const removed = await collector.removeUntouched(plan.blobs, cutoff);
    report.evictedManifests = plan.manifests;
    report.evictedBlobs = removed.removedBlobs;
    report.evictedBytes = plan.manifestBytes + removed.removedBytes;
    if (report.evictedManifests + report.evictedBlobs > 0) {
      logger.info(
        { ...report, maxBytes, usageAfter: store.mirrorUsageBytes() },
        'mirror: least recently used content evicted',
      );
      this.o.onEvicted?.(report);
    } else {
      logger.warn(
        { usageBytes, maxBytes },
        'mirror: over its size limit, but everything is in use or within the grace period',
      );
    }
    return report;
  }

  /**
   * Evicts least recently used manifests until what they leave unreferenced brings usage
   * under the limit, all in one synchronous pass (no request runs in between), and returns
   * the mirror-only blobs nothing references any more, least recently touched first. Null
   * when a stored manifest cannot be read (its references are unknown: nothing is evicted).
   */
  private evictManifests(
    usageBytes: number,
    cutoff: Date,
  ): {
    manifests: number;
    manifestBytes: number;
    blobs: { digest: string; size: number }[];
  } | null {
    const { store, maxBytes, logger } = this.o;
    const entries = store.manifestEntries();
    const refs = new Map<string, number>();
    const refsOf = new Map<string, readonly string[]>();
    const children = new Map<string, readonly string[]>();
    for (const e of entries) {
      let doc;
      try {
        doc = parseManifest(e.content, e.mediaType);
      } catch (err) {
        logger.warn(
          { err, repository: e.repository },
          'mirror: a stored manifest cannot be parsed; eviction skipped',
        );
        return null;
      }
      const named = [...new Set([...doc.blobs, ...doc.manifests])];
      for (const d of named) refs.set(d, (refs.get(d) ?? 0) + 1);
      const key = keyOf(e.repository, e.digest);
      refsOf.set(key, named);
      children.set(key, doc.manifests);
    }
    const kept = new Set<string>();
    for (const { repository, digest } of this.o.inFlight()) {
      const key = keyOf(repository, digest);
      kept.add(key);
      for (const child of children.get(key) ?? []) kept.add(keyOf(repository, child));
    }
    const usedAt = (e: ManifestEntry): Date => {
      const later = this.o.unwrittenUse?.(e.repository, e.digest) ?? null;
      return later !== null && later > e.usedAt ? later : e.usedAt;
    };
    const mirrorOnly = new Map(store.mirrorOnlyBlobs().map((b) => [b.digest, b]));
    const freeable = (digest: string): number => {
      const blob = mirrorOnly.get(digest);
      if (blob === undefined || (refs.get(digest) ?? 0) > 0) return 0;
      return blob.touchedAt < cutoff ? blob.size : 0;
    };
    let projected = usageBytes;
    for (const digest of mirrorOnly.keys()) projected -= freeable(digest);
    const lru = entries
      .filter((e) => e.repository.startsWith(MIRROR_PREFIX))
      .map((e) => ({ ...e, usedAt: usedAt(e) }))
      .filter((e) => e.usedAt < cutoff && !kept.has(keyOf(e.repository, e.digest)))
      .sort((a, b) => a.usedAt.getTime() - b.usedAt.getTime() || a.digest.localeCompare(b.digest));
    let manifests = 0;
    let manifestBytes = 0;
    for (const e of lru) {
      if (projected <= maxBytes) break;
      if (!store.evictManifestIfUnused(e.repository, e.digest, cutoff)) continue;
      manifests += 1;
      manifestBytes += e.size;
      projected -= e.size;
      for (const d of refsOf.get(keyOf(e.repository, e.digest)) ?? []) {
        const left = (refs.get(d) ?? 1) - 1;
        refs.set(d, left);
        if (left === 0) projected -= freeable(d);
      }
    }
    const blobs = [...mirrorOnly.values()]
      .filter((b) => (refs.get(b.digest) ?? 0) === 0 && b.touchedAt < cutoff)
      .sort((a, b) => a.touchedAt.getTime() - b.touchedAt.getTime())
      .map(({ digest, size }) => ({ digest, size }));
    return { manifests, manifestBytes, blobs };
  }
}
