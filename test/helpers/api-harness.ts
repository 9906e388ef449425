import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Database } from 'better-sqlite3';
import { Hono } from 'hono';
import { FakeBuildRunner } from './fake-build-runner.js';
import { ManualClock } from './manual-clock.js';
import { ApiTokenService } from '../../src/auth/api-token-service.js';
import { loadOrCreateKeys, type KeySet } from '../../src/auth/key-store.js';
import type { ApiScope } from '../../src/auth/scopes.js';
import { loadOrCreateSecretKey, SecretStore } from '../../src/auth/secret-store.js';
import { BuildManager } from '../../src/builds/build-manager.js';
import { BuildStore } from '../../src/builds/build-store.js';
import type { BuildTokenIssuer } from '../../src/builds/build-token-issuer.js';
import type { Build } from '../../src/builds/build.js';
import { EventLog } from '../../src/builds/event-log.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import { createApp } from '../../src/http/create-app.js';
import { openDatabase } from '../../src/storage/database.js';
import { createLogger } from '../../src/telemetry/create-logger.js';
import { KilnMetrics } from '../../src/telemetry/kiln-metrics.js';

/**
 * Stand-in for the registry's build-token issuer (the registry's own tests cover the real one);
 * records which builds asked for a token.
 */
export class StandInTokenIssuer implements BuildTokenIssuer {
  readonly issued: string[] = [];
  issueBuildToken(build: Build): Promise<string> {
    this.issued.push(build.id);
    return Promise.resolve(`registry-token-for-${build.id}`);
  }
}

export interface Harness {
  dataDir: string;
  config: Config;
  db: Database;
  keys: KeySet;
  store: BuildStore;
  events: EventLog;
  secrets: SecretStore;
  metrics: KilnMetrics;
  runner: FakeBuildRunner;
  tokenIssuer: StandInTokenIssuer;
  manager: BuildManager;
  apiTokens: ApiTokenService;
  time: ManualClock;
  app: ReturnType<typeof createApp>;
  token(tenant: string, scopes?: ApiScope[]): Promise<string>;
  /** Entries under <dataDir>/builds. */
  buildDirs(): string[];
  buildRows(): number;
  /** Closes the manager, database and metrics (the data directory stays for a restart). */
  stop(): Promise<void>;
  /** stop() and remove the data directory. */
  close(): Promise<void>;
}

export interface HarnessOptions {
  env?: Record<string, string>;
  dataDir?: string;
  runner?: FakeBuildRunner;
  time?: ManualClock;
  heartbeatMs?: number;
  /** Run the manager's start() (restart recovery); default true. */
  start?: boolean;
}

/** The daemon core wired as main.ts does, on a temp data dir, with a fake VM runner. */
export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'kiln-a-'));
  const config = loadConfig({ KILN_DATA_DIR: dataDir, KILN_LOG_LEVEL: 'silent', ...options.env });
  const logger = createLogger('silent');
  const time = options.time ?? new ManualClock();
  const db = openDatabase(path.join(dataDir, 'kiln.db'));
  const keys = await loadOrCreateKeys(dataDir);
  const secretKey = await loadOrCreateSecretKey(dataDir);
  const store = new BuildStore(db);
  const events = new EventLog(store, time, config.builds.maxLogBytes);
  const secrets = new SecretStore(db, secretKey, time);
  const metrics = new KilnMetrics();
  const runner = options.runner ?? new FakeBuildRunner();
  const tokenIssuer = new StandInTokenIssuer();
  const apiTokens = new ApiTokenService({ key: keys.api, clock: time });
  const manager = new BuildManager({
    store,
    events,
    runner,
    tokenIssuer,
    secrets,
    metrics,
    policy: { ...config.builds, publicUrl: config.server.publicUrl },
    clock: time,
    scheduler: time,
    logger,
  });
  const registry = new Hono();
  registry.get('/', (c) => c.json({}));
  const app = createApp({
    config,
    logger,
    clock: time,
    manager,
    events,
    apiTokens,
    secrets,
    metrics,
    registry,
    heartbeatMs: options.heartbeatMs ?? 15_000,
  });
  if (options.start ?? true) await manager.start();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await manager.close();
    db.close();
    await metrics.close();
  };
  return {
    dataDir,
    config,
    db,
    keys,
    store,
    events,
    secrets,
    metrics,
    runner,
    tokenIssuer,
    manager,
    apiTokens,
    time,
    app,
    token: (tenant, scopes = ['builds:write', 'builds:read', 'secrets:write']) =>
      apiTokens.create({ tenant, scopes, ttlSeconds: 3600 }),
    buildDirs: () => {
      try {
        return readdirSync(path.join(dataDir, 'builds'));
      } catch {
        return [];
      }
    },
    buildRows: () =>
      db.prepare<[], { n: number }>('SELECT COUNT(*) AS n FROM builds').get()?.n ?? 0,
    stop,
    close: async () => {
      await stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
