import path from 'node:path';
import type { Database } from 'better-sqlite3';
import type { Hono } from 'hono';
import type { Logger } from 'pino';
import type { ApiTokenVerifier } from './api-token-verifier.js';
import { BlobStore } from './blob-store.js';
import { BuildTokenService } from './build-token-service.js';
import { buildRegistryApp } from './registry-app.js';
import { RegistryAuthenticator } from './registry-authenticator.js';
import { RegistryStore } from './registry-store.js';
import { RegistryTokenService } from './registry-token-service.js';
import { UploadSessions } from './upload-sessions.js';
import { UploadSweeper } from './upload-sweeper.js';
import type { KeySet } from '../auth/key-store.js';
import type { BuildActivity, BuildTokenIssuer } from '../builds/build-token-issuer.js';
import type { Config } from '../config/config.js';
import type { Clock } from '../time/clock.js';

/** How often stale upload sessions are looked for (their age is judged by the clock). */
const SWEEP_INTERVAL_MS = 60_000;

/** What createRegistry needs; the database must already be opened and migrated. */
export interface RegistryOptions {
  db: Database;
  dataDir: string;
  keys: KeySet;
  config: Config;
  clock: Clock;
  logger: Logger;
  buildActivity: BuildActivity;
  apiTokens: ApiTokenVerifier;
}

/** The OCI registry: a Hono app for `/v2`, the build token issuer, and its shutdown. */
export interface Registry {
  app: Hono;
  tokenIssuer: BuildTokenIssuer;
  close(): Promise<void>;
}

/**
 * Builds the OCI registry (docs/contracts.md#registry): storage under `<dataDir>/registry`,
 * metadata in `db`, tokens signed with `keys.registry`. Removes upload leftovers of a previous run
 * and starts the stale-upload sweeper; `close()` stops it (safe to call twice). Mount `app` with
 * `app.route('/v2', registry.app)`.
 */
export async function createRegistry(deps: RegistryOptions): Promise<Registry> {
  const logger = deps.logger.child({ component: 'registry' });
  const blobs = new BlobStore(path.join(deps.dataDir, 'registry'));
  await blobs.init();
  const store = new RegistryStore(deps.db, deps.clock);
  const tokens = new RegistryTokenService({
    key: deps.keys.registry,
    audience: deps.config.registry.service,
    clock: deps.clock,
  });
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
  await uploads.sweep();
  const sweeper = new UploadSweeper({ uploads, logger, intervalMs: SWEEP_INTERVAL_MS });
  sweeper.start();
  const app = buildRegistryApp({
    store,
    blobs,
    uploads,
    tokens,
    authenticator,
    config: deps.config.registry,
    publicUrl: deps.config.server.publicUrl,
    clock: deps.clock,
    logger,
  });
  let closed = false;
  return {
    app,
    tokenIssuer: new BuildTokenService(tokens),
    async close() {
      if (closed) return;
      closed = true;
      await sweeper.close();
    },
  };
}
