import type { Histogram, Counter } from '@opentelemetry/api';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { METRIC_ATTRIBUTES } from './metric-attributes.js';
import {
  createRegistryStorageInstruments,
  type MirrorEvictionObservation,
  type MirrorStorageInstruments,
  type NamespaceStorageObservation,
} from './registry-storage-metrics.js';

/** What the cache gauges read when Prometheus scrapes. */
export interface CacheDiskObservation {
  observe(): { disks: number; sizeBytes: number; usedBytes: number };
}

/** What the queue gauges read when Prometheus scrapes. */
export interface QueueObservation {
  queued(): number;
  active(): number;
}

/** What the registry storage gauges read when Prometheus scrapes. */
export interface RegistryStorageObservation extends NamespaceStorageObservation {
  blobTotals(): { count: number; bytes: number };
}

const DURATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200];
const BOOT_BUCKETS = [0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];
const PHASE_BUCKETS = [
  0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600,
];

/**
 * Kiln's OpenTelemetry instruments (created once) and their Prometheus exposition, serialized
 * on demand for `/metrics` on the daemon's own port (the exporter's server is never started).
 */
export class KilnMetrics {
  private readonly provider: MeterProvider;
  private readonly exporter: PrometheusExporter;
  /** No target_info and no otel_scope_* labels: plain Kiln series. */
  private readonly serializer = new PrometheusSerializer('', false, undefined, true, true);
  private readonly buildDuration: Histogram;
  private readonly buildsTotal: Counter;
  private readonly uploadBytes: Counter;
  private readonly vmBoot: Histogram;
  private readonly buildPhase: Histogram;
  private readonly cacheAttaches: Counter;
  private observation: QueueObservation | null = null;
  private caches: CacheDiskObservation | null = null;
  private registryStorage: RegistryStorageObservation | null = null;
  private readonly storageInstruments: MirrorStorageInstruments;

  constructor() {
    this.exporter = new PrometheusExporter({ preventServerStart: true });
    this.provider = new MeterProvider({ readers: [this.exporter] });
    const meter = this.provider.getMeter('kiln');
    this.buildDuration = meter.createHistogram('kiln_build_duration_seconds', {
      description: 'Wall-clock seconds from acceptance to the final status, by final status.',
      unit: 's',
      advice: { explicitBucketBoundaries: DURATION_BUCKETS },
    });
    this.buildsTotal = meter.createCounter('kiln_builds_total', {
      description: 'Builds that reached a final status, by status.',
    });
    this.uploadBytes = meter.createCounter('kiln_upload_bytes_total', {
      description: 'Bytes of source archives accepted by POST /builds.',
      unit: 'By',
    });
    this.vmBoot = meter.createHistogram('kiln_vm_boot_seconds', {
      description: 'Seconds from VM start to the guest agent hello.',
      unit: 's',
      advice: { explicitBucketBoundaries: BOOT_BUCKETS },
    });
    this.buildPhase = meter.createHistogram('kiln_build_phase_seconds', {
      description:
        'Seconds a finished build spent in each phase of its time account (docs/contracts.md#timings); guest phases are as the agent reported them, fitted into the host-observed window.',
      unit: 's',
      advice: { explicitBucketBoundaries: PHASE_BUCKETS },
    });
    const queueLength = meter.createObservableGauge('kiln_queue_length', {
      description: 'Builds waiting in the queue.',
    });
    const active = meter.createObservableGauge('kiln_active_builds', {
      description: 'Builds handed to a runner and not finished.',
    });
    this.cacheAttaches = meter.createCounter('kiln_cache_attaches_total', {
      description: 'Cache disks attached to builds: hit (a committed disk forked) or miss (new).',
    });
    const cacheGauges = {
      disks: meter.createObservableGauge('kiln_cache_disks', {
        description: 'Persistent cache disks (tenant, scope).',
      }),
      sizeBytes: meter.createObservableGauge('kiln_cache_disk_size_bytes', {
        description: 'Sum of the cache disks sizes.',
        unit: 'By',
      }),
      usedBytes: meter.createObservableGauge('kiln_cache_disk_used_bytes', {
        description: 'Bytes the committed cache disks occupy on the host.',
        unit: 'By',
      }),
    };
    meter.addBatchObservableCallback(
      (result) => {
        if (!this.caches) return;
        const seen = this.caches.observe();
        result.observe(cacheGauges.disks, seen.disks);
        result.observe(cacheGauges.sizeBytes, seen.sizeBytes);
        result.observe(cacheGauges.usedBytes, seen.usedBytes);
      },
      [cacheGauges.disks, cacheGauges.sizeBytes, cacheGauges.usedBytes],
    );
    queueLength.addCallback((result) => {
      if (this.observation) result.observe(this.observation.queued());
    });
    active.addCallback((result) => {
      if (this.observation) result.observe(this.observation.active());
    });
    const blobs = meter.createObservableGauge('kiln_registry_blobs', {
      description: 'Blobs stored by the registry (pushed and mirrored).',
    });
    const blobBytes = meter.createObservableGauge('kiln_registry_blob_bytes', {
      description: 'Bytes of the blobs stored by the registry (pushed and mirrored).',
      unit: 'By',
    });
    blobs.addCallback((result) => {
      if (this.registryStorage) result.observe(this.registryStorage.blobTotals().count);
    });
    blobBytes.addCallback((result) => {
      if (this.registryStorage) result.observe(this.registryStorage.blobTotals().bytes);
    });
    this.storageInstruments = createRegistryStorageInstruments(meter, () => this.registryStorage);
  }

  /** Connects the registry storage gauges to the registry. */
  observeRegistryStorage(observation: RegistryStorageObservation): void {
    this.registryStorage = observation;
  }

  /** Counts one mirror eviction run (RegistryOptions.onMirrorEviction). */
  mirrorEvicted(report: MirrorEvictionObservation): void {
    this.storageInstruments.mirrorEvicted(report);
  }

  /** Connects the gauges to the live queue. */
  observeQueue(observation: QueueObservation): void {
    this.observation = observation;
  }

  /** Connects the cache gauges to the cache disks. */
  observeCaches(caches: CacheDiskObservation): void {
    this.caches = caches;
  }

  cacheAttached(hit: boolean): void {
    this.cacheAttaches.add(1, { [METRIC_ATTRIBUTES.result]: hit ? 'hit' : 'miss' });
  }

  buildFinished(status: 'ready' | 'failed' | 'cancelled', seconds: number): void {
    this.buildsTotal.add(1, { [METRIC_ATTRIBUTES.status]: status });
    this.buildDuration.record(seconds, { [METRIC_ATTRIBUTES.status]: status });
  }

  uploadAccepted(bytes: number): void {
    this.uploadBytes.add(bytes);
  }

  vmBooted(seconds: number): void {
    this.vmBoot.record(seconds);
  }

  /**
   * A terminal build's phases (seconds), one observation per phase it went through; later,
   * its after-finish steps (`cache_commit`, `source_removal`) the same way.
   */
  buildPhases(phases: Readonly<Partial<Record<string, number>>>): void {
    for (const [phase, seconds] of Object.entries(phases)) {
      if (seconds !== undefined)
        this.buildPhase.record(seconds, { [METRIC_ATTRIBUTES.phase]: phase });
    }
  }

  /** Collects every instrument now and returns the Prometheus text exposition. */
  async render(): Promise<string> {
    const { resourceMetrics } = await this.exporter.collect();
    return this.serializer.serialize(resourceMetrics);
  }

  async close(): Promise<void> {
    await this.provider.shutdown();
  }
}
