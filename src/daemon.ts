import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createAdaptorServer } from '@hono/node-server';
import type { Database } from 'better-sqlite3';
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import { ApiTokenService } from './auth/api-token-service.js';
import { loadOrCreateKeys, type KeySet } from './auth/key-store.js';
import { loadOrCreateSecretKey, SecretStore } from './auth/secret-store.js';
import { BuildManager } from './builds/build-manager.js';
import type { BuildRunner } from './builds/build-runner.js';
import { BuildStore } from './builds/build-store.js';
import { EventLog } from './builds/event-log.js';
import { CacheDisks } from './caches/cache-disks.js';
import { CacheStore } from './caches/cache-store.js';
import type { Config } from './config/config.js';
import { createAddressClassifier } from './egress/address-classifier.js';
import { systemConnector } from './egress/egress-connector.js';
import { systemResolver } from './egress/egress-resolver.js';
import { hostAddresses } from './egress/host-addresses.js';
import type { ApiEnv } from './http/api-env.js';
import { watchBodyIdle } from './http/body-idle-timeout.js';
import { connectHost } from './http/connect-host.js';
import { createApp } from './http/create-app.js';
import { BuildRegistryRecord } from './registry/build-registry-record.js';
import { BuildTokenService } from './registry/build-token-service.js';
import { createRegistry, type Registry } from './registry/create-registry.js';
import { BaseImageFailures } from './registry/mirror/base-image-failures.js';
import { RegistryTokenService } from './registry/registry-token-service.js';
import { DATABASE_FILE, openDatabase } from './storage/database.js';
import { WalCheckpointer } from './storage/wal-checkpointer.js';
import { KilnMetrics } from './telemetry/kiln-metrics.js';
import type { Scheduler } from './time/scheduler.js';
import { createVmBuildRunner } from './vm/create-vm-build-runner.js';
import { readGuestImageEngines } from './vm/guest-image-engines.js';
import type { EgressHooks } from './vm/vm-build-attempt.js';
import type { WebhookNetwork } from './webhooks/send-webhook.js';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.js';
import { WebhookStore } from './webhooks/webhook-store.js';
import type { Clock } from '../common/time/clock.js';

/** Milliseconds between queue-timeout sweeps. */
const QUEUE_SWEEP_MS = 5_000;

/** What the daemon is built from besides its configuration. */
export interface DaemonDeps {
  logger: Logger;
  clock: Clock;
  scheduler: Scheduler;
  /**
   * Runs the builds. Default: the VM runner (selects the VMM, which may probe-boot once).
   * Tests pass a stand-in, since microVMs cannot run in unit tests.
   */
  runner?: BuildRunner;
  /**
   * Replaces the egress proxies' name resolution, outbound connector or host address list.
   * Only tests set it (an in-process daemon whose resolver maps hostile names and whose
   * connector refuses anything but loopback); the daemon's entry point never does.
   */
  egressHooks?: EgressHooks;
  /** Milliseconds between SSE heartbeats; default 15 000. */
  heartbeatMs?: number;
  /**
   * Milliseconds a request body may stall; default `config.server.bodyIdleTimeoutSeconds`.
   * Tests pass a short one, since socket timers run on real time.
   */
  bodyIdleTimeoutMs?: number;
  /**
   * How webhooks resolve and connect; default the system resolver and `net.connect`. Tests
   * pass a guard that refuses any non-loopback connection.
   */
  webhookNetwork?: WebhookNetwork;
}

/** Where a started daemon can be reached from this host. */
export interface DaemonAddress {
  /** The address a local client dials (a wildcard bind answers on loopback). */
  host: string;
  port: number;
  /** `http://host:port`, IPv6 hosts in brackets. */
  url: string;
}

/**
 * One Kiln daemon: storage, keys, metrics, the build manager and runner, the registry and the
 * HTTP server, wired once. Nothing listens and no build runs until `start()`. The parts are
 * exposed for the composition root and for tests that drive them directly.
 */
export interface Daemon {
  readonly config: Config;
  readonly db: Database;
  readonly keys: KeySet;
  readonly store: BuildStore;
  readonly events: EventLog;
  readonly secrets: SecretStore;
  readonly webhooks: WebhookStore;
  readonly metrics: KilnMetrics;
  readonly apiTokens: ApiTokenService;
  readonly runner: BuildRunner;
  readonly manager: BuildManager;
  readonly app: Hono<ApiEnv>;
  /**
   * Listens on `config.server.host:port`, then starts the manager (restart recovery, then the
   * queue) and the queue-timeout sweep. Builds therefore only start once the port is known.
   */
  start(): Promise<DaemonAddress>;
  /**
   * Shuts down in order: answer new requests 503 and stop accepting connections; stop the
   * builds, killing their VMs (waiting at most `shutdownGraceSeconds`); close the registry and
   * the runner; close the server's remaining connections; close the database; flush metrics.
   * Every step runs even if an earlier one failed (the failures are thrown together after).
   * Safe to call twice: later calls wait for the first.
   */
  close(): Promise<void>;
}

type State = 'created' | 'starting' | 'running' | 'closing';

function unavailable(message: string): Response {
  return new Response(JSON.stringify({ error: { code: 'SHUTTING_DOWN', message } }), {
    status: 503,
    headers: { 'content-type': 'application/json' },
  });
}

function urlFor(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Builds the daemon (the database must be reachable under `config.server.dataDir`; it is
 * created and migrated). The manager's start() removes upload directories a crash left behind.
 */
export async function createDaemon(config: Config, deps: DaemonDeps): Promise<Daemon> {
  const { logger, clock, scheduler } = deps;
  const dataDir = config.server.dataDir;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase(path.join(dataDir, DATABASE_FILE));
  const checkpointer = new WalCheckpointer({
    db,
    scheduler,
    logger: logger.child({ component: 'storage' }),
  });
  let registry: Registry | undefined;
  try {
    const keys = await loadOrCreateKeys(dataDir);
    const secretKey = await loadOrCreateSecretKey(dataDir);
    const apiTokens = new ApiTokenService({ key: keys.api, clock });
    const store = new BuildStore(db);
    const events = new EventLog(store, clock, config.builds.maxLogBytes);
    const secrets = new SecretStore(db, secretKey, clock);
    const metrics = new KilnMetrics();
    const webhooks = new WebhookStore(db, secretKey, clock);
    const dispatcher = new WebhookDispatcher({
      store: webhooks,
      network: deps.webhookNetwork ?? { resolve: systemResolver, connect: systemConnector },
      policy: {
        classify: createAddressClassifier({ hostAddresses: hostAddresses() }),
        exceptions: config.webhooks.exceptions,
      },
      timeoutSeconds: config.webhooks.timeoutSeconds,
      retrySeconds: config.webhooks.retrySeconds,
      clock,
      scheduler,
      logger: logger.child({ component: 'webhooks' }),
    });

    // Set by start(): the VM runner and the public URL (with KILN_PORT=0) need the real port.
    let bound: AddressInfo | null = null;
    const boundAddress = (): AddressInfo => {
      if (bound === null) throw new Error('the daemon is not listening yet');
      return bound;
    };
    const portFromBind = config.server.port === 0 && config.server.publicUrl.endsWith(':0');
    const publicUrl = (): string =>
      portFromBind && bound !== null
        ? config.server.publicUrl.replace(/:0$/, `:${bound.port}`)
        : config.server.publicUrl;

    const caches = config.caches.enabled
      ? new CacheDisks({
          root: path.join(dataDir, 'caches'),
          store: new CacheStore(db),
          clock,
          logger: logger.child({ component: 'caches' }),
          defaultSizeBytes: config.caches.defaultSizeBytes,
          gcThresholdPercent: config.caches.gcThresholdPercent,
          onAttach: (hit) => {
            metrics.cacheAttached(hit);
          },
        })
      : null;
    if (caches) metrics.observeCaches(caches);

    const runner =
      deps.runner ??
      (await createVmBuildRunner({
        config,
        logger,
        clock,
        scheduler,
        ...(caches ? { caches } : {}),
        registryTarget: () => {
          const { address, port } = boundAddress();
          return { host: connectHost(address), port };
        },
        ...(deps.egressHooks === undefined ? {} : { egressHooks: deps.egressHooks }),
      }));
    // Registry tokens are signed by one service: the manager issues build tokens with it, the
    // registry verifies them and serves /v2/token with it.
    const registryTokens = new RegistryTokenService({
      key: keys.registry,
      audience: config.registry.service,
      clock,
    });
    // The registry records base images it could not serve to a build; the manager reads that
    // record when the build's engine fails.
    const baseImageFailures = new BaseImageFailures();
    // The registry records what it served to and received from each build's token; the
    // manager writes a ready build's base images and pushed digest from that record.
    const buildRecord = new BuildRegistryRecord(db, clock);
    // The guest image's engines, read once: `engine` is checked against them at upload.
    const guestEngines = await readGuestImageEngines(config.vm.imageDir);
    const manager = new BuildManager({
      dataDir,
      store,
      events,
      runner,
      tokenIssuer: new BuildTokenService(registryTokens),
      secrets,
      metrics,
      policy: {
        ...config.builds,
        ...(caches ? { maxCacheSizeMb: Math.floor(config.caches.maxSizeBytes / 1024 ** 2) } : {}),
        ...(guestEngines === undefined ? {} : { engines: guestEngines }),
        // Read when a build is ready (after start()), so it names the bound port.
        get publicUrl() {
          return publicUrl();
        },
      },
      egress: config.egress,
      clock,
      scheduler,
      logger: logger.child({ component: 'builds' }),
      statusListener: dispatcher,
      baseImageFailures,
      registryRecord: buildRecord,
    });
    registry = await createRegistry({
      db,
      dataDir,
      tokens: registryTokens,
      config,
      publicUrl,
      clock,
      logger,
      buildActivity: manager,
      apiTokens,
      mirror: config.mirror,
      baseImageFailures,
      buildRecord,
      scheduler,
      onMirrorEviction: (report) => {
        metrics.mirrorEvicted(report);
      },
    });
    metrics.observeRegistryStorage(registry);
    let state: State = 'created';
    const app = createApp({
      config,
      logger,
      clock,
      manager,
      events,
      apiTokens,
      secrets,
      webhooks,
      metrics,
      registry: registry.app,
      caches,
      isReady: () => state !== 'closing',
      ...(deps.heartbeatMs === undefined ? {} : { heartbeatMs: deps.heartbeatMs }),
    });
    // The node bindings (`env`) are passed through so the registry can stream blob bodies
    // straight between sockets and files instead of through web-stream adapters.
    // No total request time (Node's 300 s `requestTimeout` cut legitimate slow uploads): bodies
    // get an idle limit instead, headers keep a total one.
    const server = createAdaptorServer({
      fetch: (request, env) =>
        state === 'closing' ? unavailable('The daemon is shutting down.') : app.fetch(request, env),
      serverOptions: {
        requestTimeout: 0,
        headersTimeout: config.server.headersTimeoutSeconds * 1000,
      },
    }) as Server;
    watchBodyIdle(
      server,
      deps.bodyIdleTimeoutMs ?? config.server.bodyIdleTimeoutSeconds * 1000,
      logger.child({ component: 'http' }),
    );

    let cancelSweep = (): void => undefined;
    const armSweep = (): void => {
      cancelSweep = scheduler.setTimeout(() => {
        manager.sweepQueueTimeouts();
        if (state === 'running') armSweep();
      }, QUEUE_SWEEP_MS);
    };

    const openedRegistry = registry;
    let closing: Promise<void> | null = null;
    const shutdown = async (): Promise<void> => {
      const wasListening = state === 'starting' || state === 'running';
      state = 'closing';
      cancelSweep();
      const failures: unknown[] = [];
      const step = async (run: () => unknown): Promise<void> => {
        try {
          await run();
        } catch (err) {
          failures.push(err);
        }
      };
      const serverClosed = wasListening
        ? new Promise<void>((resolve) => {
            server.close(() => {
              resolve();
            });
          })
        : Promise.resolve();
      server.closeIdleConnections();
      await step(async () => {
        // Running builds are aborted with reason "shutdown"; each run ends once its VM is gone.
        let cancelGrace = (): void => undefined;
        const grace = new Promise<void>((resolve) => {
          cancelGrace = scheduler.setTimeout(resolve, config.server.shutdownGraceSeconds * 1000);
        });
        try {
          await Promise.race([manager.close(), grace]);
        } finally {
          cancelGrace();
        }
      });
      await step(() => dispatcher.close());
      await step(() => openedRegistry.close());
      await step(() => runner.close());
      server.closeAllConnections();
      await step(() => serverClosed);
      await step(() => checkpointer.close());
      await step(() => {
        db.close();
      });
      await step(() => metrics.close());
      if (failures.length > 0) throw new AggregateError(failures, 'daemon shutdown failed');
    };

    return {
      config,
      db,
      keys,
      store,
      events,
      secrets,
      webhooks,
      metrics,
      apiTokens,
      runner,
      manager,
      app,
      async start() {
        if (state !== 'created') throw new Error(`Daemon.start() called while ${state}`);
        state = 'starting';
        checkpointer.start();
        server.listen(config.server.port, config.server.host);
        await once(server, 'listening');
        bound = server.address() as AddressInfo;
        // Deliveries a previous process left pending first; events of the recovery follow.
        dispatcher.start();
        await manager.start();
        // close() may have been called while the manager recovered.
        if ((state as State) !== 'starting')
          throw new Error('the daemon was closed while starting');
        state = 'running';
        armSweep();
        const host = connectHost(bound.address);
        const address = { host, port: bound.port, url: urlFor(host, bound.port) };
        logger.info({ url: address.url, port: address.port }, 'listening');
        return address;
      },
      close() {
        closing ??= shutdown();
        return closing;
      },
    };
  } catch (err) {
    await registry?.close();
    db.close();
    throw err;
  }
}
