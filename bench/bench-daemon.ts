import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { BuildRunnerStandIn } from './build-runner-stand-in.js';
import { systemClock } from '../common/time/clock.js';
import { loadConfig } from '../src/config/config.js';
import { createDaemon, type Daemon } from '../src/daemon.js';
import { createLogger } from '../src/telemetry/create-logger.js';
import { systemScheduler } from '../src/time/scheduler.js';

/** A daemon for a benchmark, in this process, with its data directory and URL. */
export interface BenchDaemon {
  daemon: Daemon;
  url: string;
  token(tenant: string): Promise<string>;
  /** Closes the daemon and removes its data directory. */
  close(): Promise<void>;
}

/**
 * The real daemon (createDaemon, as main.ts builds it) on 127.0.0.1:0 with a temp data dir,
 * the system clock and scheduler, logging off, and the runner stand-in at the VM boundary.
 * Nothing leaves loopback: the mirror is air-gapped and webhooks can only reach loopback.
 */
export async function startBenchDaemon(
  runner: BuildRunnerStandIn,
  env: Record<string, string> = {},
): Promise<BenchDaemon> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'kiln-bench-'));
  const config = loadConfig({
    KILN_DATA_DIR: dataDir,
    KILN_HOST: '127.0.0.1',
    KILN_PORT: '0',
    KILN_LOG_LEVEL: 'silent',
    KILN_MIRROR_AIR_GAPPED: 'true',
    ...env,
  });
  const daemon = await createDaemon(config, {
    logger: createLogger(config.server.logLevel),
    clock: systemClock,
    scheduler: systemScheduler,
    runner,
    webhookNetwork: {
      resolve: (name) => Promise.reject(new Error(`benchmark: no DNS for ${name}`)),
      connect: () => {
        throw new Error('benchmark: no webhooks');
      },
    },
  });
  try {
    const { url } = await daemon.start();
    return {
      daemon,
      url,
      token: (tenant) =>
        daemon.apiTokens.create({
          tenant,
          scopes: ['builds:write', 'builds:read'],
          ttlSeconds: 3600,
        }),
      close: async () => {
        try {
          await daemon.close();
        } finally {
          rmSync(dataDir, { recursive: true, force: true });
        }
      },
    };
  } catch (err) {
    await daemon.close().catch(() => undefined);
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}
