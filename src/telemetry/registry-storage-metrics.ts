import type { Counter, Meter } from '@opentelemetry/api';
import { METRIC_ATTRIBUTES } from './metric-attributes.js';

/**
 * What the per-namespace storage gauges read when Prometheus scrapes. Namespaces are classes,
 * never tenant names (bounded label cardinality): `library`, `mirror`, `cache`, and `tenant`
 * for every tenant's repositories together.
 */
export interface NamespaceStorageObservation {
  namespaceTotals(): readonly {
    namespace: string;
    blobs: number;
    blobBytes: number;
    manifests: number;
    manifestBytes: number;
  }[];
  /** Bytes the mirror's size limit counts, and the limit (0 = none). */
  mirrorUsage(): { bytes: number; maxBytes: number };
}

/** One mirror eviction run that removed something. */
export interface MirrorEvictionObservation {
  evictedManifests: number;
  evictedBlobs: number;
  evictedBytes: number;
}

/** The counters a mirror eviction adds to. */
export interface MirrorStorageInstruments {
  mirrorEvicted(report: MirrorEvictionObservation): void;
}

/**
 * Creates the registry's per-namespace gauges and the mirror's eviction counters on `meter`;
 * the gauges read `observe()` at each scrape (nothing before the registry is connected).
 */
export function createRegistryStorageInstruments(
  meter: Meter,
  observe: () => NamespaceStorageObservation | null,
): MirrorStorageInstruments {
  const gauges = {
    blobs: meter.createObservableGauge('kiln_registry_namespace_blobs', {
      description:
        'Blobs linked into repositories of each namespace class (library, mirror, cache, tenant); a blob shared by two classes counts in both.',
    }),
    blobBytes: meter.createObservableGauge('kiln_registry_namespace_blob_bytes', {
      description: 'Bytes of the blobs linked into repositories of each namespace class.',
      unit: 'By',
    }),
    manifests: meter.createObservableGauge('kiln_registry_namespace_manifests', {
      description: 'Manifests stored in repositories of each namespace class.',
    }),
    manifestBytes: meter.createObservableGauge('kiln_registry_namespace_manifest_bytes', {
      description: 'Bytes of the manifests stored in repositories of each namespace class.',
      unit: 'By',
    }),
    mirrorUsage: meter.createObservableGauge('kiln_mirror_usage_bytes', {
      description:
        'Bytes KILN_MIRROR_MAX_BYTES counts: blobs only mirrored repositories hold, and the mirror manifests.',
      unit: 'By',
    }),
    mirrorMax: meter.createObservableGauge('kiln_mirror_max_bytes', {
      description: 'The mirror size limit (KILN_MIRROR_MAX_BYTES); 0 = none.',
      unit: 'By',
    }),
  };
  meter.addBatchObservableCallback((result) => {
    const seen = observe();
    if (seen === null) return;
    for (const t of seen.namespaceTotals()) {
      const attributes = { [METRIC_ATTRIBUTES.namespace]: t.namespace };
      result.observe(gauges.blobs, t.blobs, attributes);
      result.observe(gauges.blobBytes, t.blobBytes, attributes);
      result.observe(gauges.manifests, t.manifests, attributes);
      result.observe(gauges.manifestBytes, t.manifestBytes, attributes);
    }
    const usage = seen.mirrorUsage();
    result.observe(gauges.mirrorUsage, usage.bytes);
    result.observe(gauges.mirrorMax, usage.maxBytes);
  }, Object.values(gauges));
  const evictions: Counter = meter.createCounter('kiln_mirror_evictions_total', {
    description:
      'Mirrored manifests and blobs evicted to keep the mirror under its size limit, by kind.',
  });
  const evictedBytes: Counter = meter.createCounter('kiln_mirror_evicted_bytes_total', {
    description: 'Bytes of mirrored manifests and blobs evicted.',
    unit: 'By',
  });
  return {
    mirrorEvicted(report) {
      evictions.add(report.evictedManifests, { [METRIC_ATTRIBUTES.kind]: 'manifest' });
      evictions.add(report.evictedBlobs, { [METRIC_ATTRIBUTES.kind]: 'blob' });
      evictedBytes.add(report.evictedBytes);
    },
  };
}
