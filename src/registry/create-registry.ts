import path from 'node:path';
import type { Database } from 'better-sqlite3';
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import type { ApiTokenVerifier } from './api-token-verifier.js';
import { BlobCollector } from './blob-collector.js';
import { BlobStore } from './blob-store.js';
import { BuildRegistryRecord } from './build-registry-record.js';
import { BaseImageFailures } from './mirror/base-image-failures.js';
import { MirrorEvictor, type EvictionReport } from './mirror/mirror-evictor.js';
import { RegistryMirror } from './mirror/registry-mirror.js';
import { readUpstreamCredentials } from './mirror/upstream-credentials.js';
import { buildRegistryApp, type RegistryEnv } from './registry-app.js';
import { RegistryAuthenticator } from './registry-authenticator.js';
import { RegistryStore, type NamespaceTotals } from './registry-store.js';
import type { RegistryTokenService } from './registry-token-service.js';
import { UploadSessions } from './upload-sessions.js';
import { UploadSweeper } from './upload-sweeper.js';
import type { Clock } from '../../common/time/clock.js';
import type { BuildActivity } from '../builds/build-token-issuer.js';
import type { Config } from '../config/config.js';
import { parseMirrorConfig, type MirrorConfig } from '../config/mirror-config.js';
import { systemScheduler, type Scheduler } from '../time/scheduler.js';

/** How often stale upload sessions are looked for (their age is judged by the clock). */
const SWEEP_INTERVAL_MS = 60_000;

/** What createRegistry needs; the database must already be opened and migrated. */
export interface RegistryOptions {
  db: Database;
  dataDir: string;
  /**
   * Signs and verifies registry tokens (`keys.registry`, audience `config.registry.service`).
   * Passed in because the build manager issues build tokens with the same service.
   */
  tokens: RegistryTokenService;
  config: Config;
  /**
   * The daemon's public base URL, asked per request (it names the bound port once a daemon
   * started with KILN_PORT=0 listens); default `config.server.publicUrl`.
   */
  publicUrl?: () => string;
  clock: Clock;
  logger: Logger;
  buildActivity: BuildActivity;
  apiTokens: ApiTokenVerifier;
  /**
   * The pull-through mirror's upstreams (`config.mirror`). Without it the mirror namespace
   * has no upstreams, as on an air-gapped host: only what is stored there is served.
   */
  mirror?: MirrorConfig;
  /**
   * Where mirror pulls that could not be served are recorded per build; the daemon shares it
   * with the build manager. Default: a record of the registry's own.
   */
  baseImageFailures?: BaseImageFailures;
  /**
   * Where manifests served to and pushed by builds are recorded; the daemon shares it with
   * the build manager. Default: a record of the registry's own on `db`.
   */
  buildRecord?: BuildRegistryRecord;
  /** Runs the periodic mirror eviction (every `gcIntervalSeconds`); the system's unless given. */
  scheduler?: Scheduler;
  /** Told of every mirror eviction run that removed something (for /metrics). */
  onMirrorEviction?: (report: EvictionReport) => void;
}

/** The mirror's configuration when none is given: no upstreams, the default size limit. */
const NO_UPSTREAMS: MirrorConfig = parseMirrorConfig({ KILN_MIRROR_AIR_GAPPED: 'true' });

/** The OCI registry: a Hono app for `/v2` and its shutdown. */
export interface Registry {
  app: Hono<RegistryEnv>;
  /** Garbage collection of unreferenced blobs; sweeps every `KILN_REGISTRY_GC_INTERVAL_SECONDS`. */
  collector: BlobCollector;
  /** Least-recently-used eviction of mirrored content over `KILN_MIRROR_MAX_BYTES`. */
  evictor: MirrorEvictor;
  /** The pull-through mirror (its downloads and prefetches under way, for tests). */
  mirror: RegistryMirror;
  /** Runs one eviction now, after any sweep or eviction under way (for tests and operators). */
  evictMirror(): Promise<EvictionReport>;
  /** How many blobs are stored and their bytes (for /metrics). */
  blobTotals(): { count: number; bytes: number };
  /** Blobs and manifests per namespace class (for /metrics). */
  namespaceTotals(): NamespaceTotals[];
  /** Bytes the mirror's size limit counts, and the limit (0 = none). */
  mirrorUsage(): { bytes: number; maxBytes: number };
  close(): Promise<void>;
}

/**
 * Builds the OCI registry (docs/contracts.md#registry): storage under `<dataDir>/registry`,
 * metadata in `db`, tokens signed and checked by `tokens`. Removes upload leftovers of a previous
 * run and starts the stale-upload sweeper; `close()` stops it and the mirror's downloads (safe to
 * call twice). Mount `app` with
 * `app.route('/v2', registry.app)`.
 */
export async function createRegistry(deps: RegistryOptions): Promise<Registry> {
  const logger = deps.logger.child({ component: 'registry' });
  const blobs = new BlobStore(path.join(deps.dataDir, 'registry'));
  await blobs.init();
  const store = new RegistryStore(deps.db, deps.clock);
  const { tokens } = deps;
  const uploads = new UploadSessions({
    store,
    blobs,
    clock: deps.clock,
    ttlSeconds: deps.config.registry.uploadSessionTtlSeconds,
    logger,
  });
  const authenticator = new RegistryAuthenticator({
    tokens,
    apiTokens: deps.apiTokens,
    buildActivity: deps.buildActivity,
  });
  const mirrorConfig = deps.mirror ?? NO_UPSTREAMS;
  let closed = false;
  const mirror = await RegistryMirror.create({
    config: mirrorConfig,
    credentials:
      mirrorConfig.credentialsFile === null
        ? new Map()
        : await readUpstreamCredentials(mirrorConfig.credentialsFile),
    store,
    blobs,
    downloadsDir: path.join(deps.dataDir, 'registry', 'mirror-downloads'),
    maxManifestBytes: deps.config.registry.maxManifestBytes,
    clock: deps.clock,
    logger,
    // Called only once requests are served, after the evictor below exists. A failed run is
    // logged by `exclusive`.
    onFill: () => {
      if (!closed && !evictionQueued && evictor.overLimit()) {
        queueEviction().catch(() => undefined);
      }
    },
  });
  await uploads.recover();
  await uploads.sweep();
  const sweeper = new UploadSweeper({ uploads, logger, intervalMs: SWEEP_INTERVAL_MS });
  sweeper.start();
  const collector = new BlobCollector({
    store,
    blobs,
    clock: deps.clock,
    graceSeconds: deps.config.registry.gcGraceSeconds,
    logger,
  });
  // Sweeps and evictions run one at a time; a failed one is logged and the next runs on schedule.
  let collecting: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(run: () => Promise<T>): Promise<T> => {
    const next = collecting.then(run);
    collecting = next.catch((err: unknown) => {
      logger.warn({ err }, 'registry gc: sweep or mirror eviction failed');
    });
    return next;
  };
  const gcTimer = setInterval(() => {
    void exclusive(() => collector.sweep()).catch(() => undefined);
  }, deps.config.registry.gcIntervalSeconds * 1000);
  gcTimer.unref();
  const buildRecord = deps.buildRecord ?? new BuildRegistryRecord(deps.db, deps.clock);
  const evictor = new MirrorEvictor({
    store,
    collector,
    maxBytes: mirrorConfig.maxBytes,
    inFlight: () => buildRecord.servedManifests(),
    unwrittenUse: (repository, digest) => mirror.unwrittenUse(repository, digest),
    logger,
    ...(deps.onMirrorEviction === undefined ? {} : { onEvicted: deps.onMirrorEviction }),
  });
  let evictionQueued = false;
  const queueEviction = (): Promise<EvictionReport> => {
    evictionQueued = true;
    return exclusive(() => {
      evictionQueued = false;
      return evictor.evict();
    });
  };
  const scheduler = deps.scheduler ?? systemScheduler;
  let cancelEviction = (): void => undefined;
  const armEviction = (): void => {
    cancelEviction = scheduler.setTimeout(() => {
      if (closed) return;
      void queueEviction()
        .catch(() => undefined)
        .finally(() => {
          if (!closed) armEviction();
        });
    }, deps.config.registry.gcIntervalSeconds * 1000);
  };
  if (mirrorConfig.maxBytes > 0) armEviction();
  const app = buildRegistryApp({
    store,
    blobs,
    uploads,
    tokens,
    authenticator,
    mirror,
    baseImageFailures: deps.baseImageFailures ?? new BaseImageFailures(),
    buildRecord,
    config: deps.config.registry,
    publicUrl: deps.publicUrl ?? (() => deps.config.server.publicUrl),
    clock: deps.clock,
    logger,
  });
  return {
    app,
    collector,
    evictor,
    mirror,
    evictMirror: queueEviction,
    blobTotals: () => store.blobTotals(),
    namespaceTotals: () => store.namespaceTotals(),
    mirrorUsage: () => ({ bytes: store.mirrorUsageBytes(), maxBytes: mirrorConfig.maxBytes }),
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(gcTimer);
      cancelEviction();
      await collecting;
      await sweeper.close();
      await mirror.close();
    },
  };
}
