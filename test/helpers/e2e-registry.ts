import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import { pino } from 'pino';
import { systemClock } from '../../common/time/clock.js';
import { ApiTokenService } from '../../src/auth/api-token-service.js';
import { loadOrCreateKeys } from '../../src/auth/key-store.js';
import type { Build } from '../../src/builds/build.js';
import { loadConfig } from '../../src/config/config.js';
import { BuildTokenService } from '../../src/registry/build-token-service.js';
import { createRegistry, type Registry } from '../../src/registry/create-registry.js';
import { RegistryTokenService } from '../../src/registry/registry-token-service.js';
import { openDatabase } from '../../src/storage/database.js';

/** Kiln's real registry alone on 127.0.0.1:<ephemeral>, for tests below the daemon. */
export interface E2eRegistry {
  host: string;
  port: number;
  /** An operator API token (registry:admin), usable as the Basic password. */
  adminToken: string;
  /** Issues build tokens; the build counts as running until `endBuild`. */
  issueBuildToken(build: Build): Promise<string>;
  endBuild(buildId: string): void;
  close(): Promise<void>;
}

export async function startE2eRegistry(): Promise<E2eRegistry> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-registry-'));
  const config = loadConfig({ KILN_DATA_DIR: dataDir, KILN_PORT: '0' });
  const db = openDatabase(path.join(dataDir, 'kiln.db'));
  const keys = await loadOrCreateKeys(dataDir);
  const apiTokens = new ApiTokenService({ key: keys.api, clock: systemClock });
  /** Running builds and the attempt each token was issued for. */
  const active = new Map<string, string>();
  const tokens = new RegistryTokenService({
    key: keys.registry,
    audience: config.registry.service,
    clock: systemClock,
  });
  const registry: Registry = await createRegistry({
    db,
    dataDir,
    tokens,
    config,
    clock: systemClock,
    logger: pino({ level: 'silent' }),
    buildActivity: {
      isAttemptRunning: (id: string, attempt: string) => active.get(id) === attempt,
    },
    apiTokens,
  });
  const app = new Hono();
  app.route('/v2', registry.app);
  const server: ServerType = await new Promise((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: 0 }, () => {
      resolve(s);
    });
  });
  const port = (server.address() as AddressInfo).port;
  const adminToken = await apiTokens.create({
    tenant: 'operator',
    scopes: ['registry:admin', 'registry:pull'],
    ttlSeconds: 3600,
  });
  const issuer = new BuildTokenService(tokens);
  return {
    host: '127.0.0.1',
    port,
    adminToken,
    issueBuildToken: async (build) => {
      const attempt = active.get(build.id) ?? randomUUID();
      active.set(build.id, attempt);
      return issuer.issueBuildToken(build, attempt);
    },
    endBuild: (id) => active.delete(id),
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      });
      await registry.close();
      db.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
