import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { CapturedLog } from './captured-log.js';
import { FakeBuildRunner } from './fake-build-runner.js';
import { LoopbackOnlyConnector } from './loopback-only-connector.js';
import { ManualClock } from './manual-clock.js';
import { sampleTar } from './tar-builder.js';
import type { ApiScope } from '../../src/auth/scopes.js';
import { loadConfig } from '../../src/config/config.js';
import { createDaemon, type Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/telemetry/create-logger.js';
import type { WebhookNetwork } from '../../src/webhooks/send-webhook.js';

/** A daemon built by createDaemon, as main.ts builds it, with a stand-in VM runner. */
export interface Harness extends Omit<Daemon, 'runner' | 'start' | 'close'> {
  dataDir: string;
  runner: FakeBuildRunner;
  time: ManualClock;
  /** `http://127.0.0.1:<port>` once started (the daemon listens on an ephemeral port). */
  url: string;
  port: number;
  token(tenant: string, scopes?: ApiScope[]): Promise<string>;
  /** Submits the sample tar over HTTP with `token`; the new build's id (asserts the 202). */
  submitSample(token: string): Promise<string>;
  /** Entries under <dataDir>/builds. */
  buildDirs(): string[];
  buildRows(): number;
  /** The daemon's close(): server, builds, registry, database, metrics (the data dir stays). */
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
  /** Receives the daemon's log lines (at `debug` and above); default: logging off. */
  log?: CapturedLog;
  /** Milliseconds a request body may stall (default: the configured seconds). */
  bodyIdleTimeoutMs?: number;
  /** Run the daemon's start() (listen, restart recovery, queue); default true. */
  start?: boolean;
  /**
   * How webhooks resolve and connect. Default: no DNS at all and a connector that refuses
   * anything but loopback, so no test can send a packet off the machine.
   */
  webhookNetwork?: WebhookNetwork;
}

/**
 * The real daemon on a temp data dir and 127.0.0.1:0, with a manual clock and scheduler and
 * the fake runner at the VM boundary (microVMs cannot run in these tests).
 */
export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), 'kiln-a-'));
  const config = loadConfig({
    KILN_DATA_DIR: dataDir,
    KILN_HOST: '127.0.0.1',
    KILN_PORT: '0',
    KILN_LOG_LEVEL: 'silent',
    // The fake runner boots no guest: no image.json, so no engine list from this machine.
    KILN_IMAGE_DIR: path.join(dataDir, 'no-guest-image'),
    // No test reaches a public registry: the mirror has no upstreams unless a test names some.
    ...(options.env?.KILN_MIRROR_UPSTREAMS === undefined ? { KILN_MIRROR_AIR_GAPPED: 'true' } : {}),
    ...options.env,
  });
  const time = options.time ?? new ManualClock();
  const runner = options.runner ?? new FakeBuildRunner();
  const daemon = await createDaemon(config, {
    logger:
      options.log === undefined
        ? createLogger(config.server.logLevel)
        : createLogger('debug', options.log),
    clock: time,
    scheduler: time,
    runner,
    heartbeatMs: options.heartbeatMs ?? 15_000,
    ...(options.bodyIdleTimeoutMs === undefined
      ? {}
      : { bodyIdleTimeoutMs: options.bodyIdleTimeoutMs }),
    webhookNetwork: options.webhookNetwork ?? {
      resolve: (name) => Promise.reject(new Error(`test harness: no DNS for ${name}`)),
      connect: new LoopbackOnlyConnector().connect,
    },
  });
  let url = '';
  let port = 0;
  if (options.start ?? true) ({ url, port } = await daemon.start());
  const { db, apiTokens } = daemon;
  const stop = () => daemon.close();
  return {
    config: daemon.config,
    db,
    keys: daemon.keys,
    store: daemon.store,
    events: daemon.events,
    secrets: daemon.secrets,
    webhooks: daemon.webhooks,
    metrics: daemon.metrics,
    apiTokens,
    manager: daemon.manager,
    app: daemon.app,
    dataDir,
    runner,
    time,
    url,
    port,
    token: (tenant, scopes = ['builds:write', 'builds:read', 'secrets:write']) =>
      apiTokens.create({ tenant, scopes, ttlSeconds: 3600 }),
    submitSample: async (token) => {
      const fd = new FormData();
      fd.append('source', new Blob([sampleTar()]), 'app.tar');
      const res = await fetch(`${url}/builds`, {
        method: 'POST',
        body: fd,
        headers: { authorization: `Bearer ${token}` },
      });
      if (res.status !== 202) {
        throw new Error(`test harness: POST /builds answered ${res.status}: ${await res.text()}`);
      }
      return ((await res.json()) as { id: string }).id;
    },
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
