import { once } from 'node:events';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { ApiTokenService } from './auth/api-token-service.js';
import { loadOrCreateKeys } from './auth/key-store.js';
import { loadOrCreateSecretKey, SecretStore } from './auth/secret-store.js';
import { BuildManager } from './builds/build-manager.js';
import { BuildStore } from './builds/build-store.js';
import { EventLog } from './builds/event-log.js';
import { LateBoundTokenIssuer } from './builds/late-bound-token-issuer.js';
import { removeOrphanBuildDirs } from './builds/remove-orphan-build-dirs.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createApp } from './http/create-app.js';
import { createRegistry } from './registry/create-registry.js';
import { openDatabase } from './storage/database.js';
import { createLogger } from './telemetry/create-logger.js';
import { KilnMetrics } from './telemetry/kiln-metrics.js';
import { systemClock } from './time/clock.js';
import { systemScheduler } from './time/scheduler.js';
import { createVmBuildRunner } from './vm/create-vm-build-runner.js';

/** Milliseconds between queue-timeout sweeps. */
const QUEUE_SWEEP_MS = 5_000;

function unavailable(message: string): Response {
  return new Response(JSON.stringify({ error: { code: 'SHUTTING_DOWN', message } }), {
    status: 503,
    headers: { 'content-type': 'application/json' },
  });
}

/** With KILN_PORT=0 and no KILN_PUBLIC_URL, the public URL names the port actually bound. */
function withBoundPort(config: Config, port: number): Config {
  if (config.server.port !== 0 || !config.server.publicUrl.endsWith(':0')) return config;
  const server = Object.freeze({
    ...config.server,
    port,
    publicUrl: config.server.publicUrl.replace(/:0$/, `:${port}`),
  });
  return Object.freeze({ ...config, server });
}

/**
 * The composition root: configuration, logger, store, keys, metrics, the HTTP server, the VM
 * runner, the build manager and the registry, wired once; signals handled here only.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kiln: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.server.logLevel);
  const clock = systemClock;
  const dataDir = config.server.dataDir;
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const db = openDatabase(path.join(dataDir, 'kiln.db'));
  const keys = await loadOrCreateKeys(dataDir);
  const secretKey = await loadOrCreateSecretKey(dataDir);
  const apiTokens = new ApiTokenService({ key: keys.api, clock });
  const store = new BuildStore(db);
  const removed = await removeOrphanBuildDirs(
    path.join(dataDir, 'builds'),
    (id) => store.get(id) !== null,
  );
  if (removed > 0) logger.info({ removed }, 'removed interrupted uploads');
  const events = new EventLog(store, clock, config.builds.maxLogBytes);
  const secrets = new SecretStore(db, secretKey, clock);
  const metrics = new KilnMetrics();

  // Listen first: the VM runner needs the address the daemon really listens on (the guest's
  // registry forward). Until the app is wired every request is answered 503.
  // The node bindings (`env`) are passed through so the registry can stream blob bodies
  // straight between sockets and files instead of through web-stream adapters.
  let handler: (request: Request, env: unknown) => Response | Promise<Response> = () =>
    unavailable('The daemon is starting.');
  const server = serve({
    fetch: (request, env) => handler(request, env),
    hostname: config.server.host,
    port: config.server.port,
  }) as Server;
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;
  config = withBoundPort(config, port);
  const listenHost =
    config.server.host === '0.0.0.0' || config.server.host === '::'
      ? '127.0.0.1'
      : config.server.host;

  const runner = await createVmBuildRunner({
    config,
    db,
    logger,
    clock,
    registryTarget: { host: listenHost, port },
  });
  // The manager is the registry's BuildActivity and the registry issues the manager's build
  // tokens: the manager gets a late-bound issuer, bound right after the registry exists.
  const tokenIssuer = new LateBoundTokenIssuer();
  const manager = new BuildManager({
    store,
    events,
    runner,
    tokenIssuer,
    secrets,
    metrics,
    policy: { ...config.builds, publicUrl: config.server.publicUrl },
    clock,
    scheduler: systemScheduler,
    logger: logger.child({ component: 'builds' }),
  });
  const registry = await createRegistry({
    db,
    dataDir,
    keys,
    config,
    clock,
    logger,
    buildActivity: manager,
    apiTokens,
  });
  tokenIssuer.bind(registry.tokenIssuer);
  let open = true;
  const app = createApp({
    config,
    logger,
    clock,
    manager,
    events,
    apiTokens,
    secrets,
    metrics,
    registry: registry.app,
    isReady: () => open,
  });
  handler = (request, env) => app.fetch(request, env);
  await manager.start();
  const sweep = setInterval(() => {
    manager.sweepQueueTimeouts();
  }, QUEUE_SWEEP_MS);
  sweep.unref();
  logger.info({ url: `http://${listenHost}:${port}`, port }, 'listening');

  let stopping = false;
  const shutdown = async (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: exiting at once');
      process.exit(130);
    }
    stopping = true;
    open = false;
    logger.info({ signal }, 'shutting down');
    handler = () => unavailable('The daemon is shutting down.');
    clearInterval(sweep);
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    server.closeIdleConnections();
    const grace = new Promise<void>((resolve) => {
      setTimeout(resolve, config.server.shutdownGraceSeconds * 1000).unref();
    });
    // Running builds are aborted with reason "shutdown"; run() resolves once each VM is gone.
    await Promise.race([manager.close(), grace]);
    await registry.close();
    await runner.close();
    server.closeAllConnections();
    await closed;
    db.close();
    await metrics.close();
    logger.info('stopped');
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, (s: NodeJS.Signals) => {
      shutdown(s).catch((err: unknown) => {
        logger.fatal({ err }, 'shutdown failed');
        process.exit(1);
      });
    });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(
    `kiln: failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
