import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import type { Database } from 'better-sqlite3';
import { Hono } from 'hono';
import { pino } from 'pino';
import { ManualClock } from './manual-clock.js';
import { testBuild } from './test-build.js';
import { ApiTokenService } from '../../src/auth/api-token-service.js';
import { loadOrCreateKeys, type KeySet } from '../../src/auth/key-store.js';
import type { ApiScope } from '../../src/auth/scopes.js';
import type { BuildActivity } from '../../src/builds/build-token-issuer.js';
import type { Build } from '../../src/builds/build.js';
import { loadConfig, type Config } from '../../src/config/config.js';
import type { MirrorConfig } from '../../src/config/mirror-config.js';
import { BuildTokenService } from '../../src/registry/build-token-service.js';
import { createRegistry, type Registry } from '../../src/registry/create-registry.js';
import { BaseImageFailures } from '../../src/registry/mirror/base-image-failures.js';
import { RegistryTokenService } from '../../src/registry/registry-token-service.js';
import { openDatabase } from '../../src/storage/database.js';

/**
 * Stand-in for the BuildManager's view of running builds: the active build ids and each one's
 * running attempt.
 */
export class FakeBuildActivity implements BuildActivity {
  readonly active = new Set<string>();
  private readonly attempts = new Map<string, string>();

  isAttemptRunning(buildId: string, attemptId: string): boolean {
    return this.active.has(buildId) && this.attempts.get(buildId) === attemptId;
  }

  /** The running attempt of `buildId`, started (and the build marked active) if there is none. */
  attempt(buildId: string): string {
    this.active.add(buildId);
    let attempt = this.attempts.get(buildId);
    if (attempt === undefined) {
      attempt = randomUUID();
      this.attempts.set(buildId, attempt);
    }
    return attempt;
  }

  /** A re-run of `buildId`: a new attempt replaces the running one. */
  rerun(buildId: string): string {
    this.attempts.delete(buildId);
    return this.attempt(buildId);
  }
}

/** A Build with the fields the registry reads; everything else filled with plain values. */
export function registryTestBuild(input: {
  id: string;
  tenant: string;
  repository: string;
  cacheRepository?: string | null;
  timeoutSeconds?: number;
  /** `image_tags`; the first name should be `repository`'s. */
  imageTags?: { name: string; tag: string }[];
}): Build {
  return testBuild({
    id: input.id,
    tenant: input.tenant,
    status: 'building',
    repository: input.repository,
    cacheRepository: input.cacheRepository ?? null,
    attempts: 1,
    request: {
      timeoutSeconds: input.timeoutSeconds ?? 600,
      ...(input.imageTags === undefined ? {} : { imageTags: input.imageTags }),
    },
  });
}

/**
 * The real registry (real SQLite, real disk, real keys) served by @hono/node-server on
 * 127.0.0.1:0 under `/v2`, with a fake clock and a fake BuildActivity as the only stand-ins.
 */
export class RegistryHarness {
  readonly dataDir: string;
  readonly clock: ManualClock;
  readonly activity = new FakeBuildActivity();
  /** The mirror pulls the registry could not serve, per build (the build manager's input). */
  readonly baseImageFailures = new BaseImageFailures();
  readonly config: Config;
  keys!: KeySet;
  apiTokens!: ApiTokenService;
  db!: Database;
  tokens!: RegistryTokenService;
  registry!: Registry;
  private server: ServerType | null = null;
  port = 0;

  private readonly webStreams: boolean;
  private readonly mirror: MirrorConfig | undefined;

  private constructor(
    dataDir: string,
    clock: ManualClock,
    env: Record<string, string>,
    webStreams: boolean,
    mirror: MirrorConfig | undefined,
  ) {
    this.dataDir = dataDir;
    this.clock = clock;
    this.webStreams = webStreams;
    this.mirror = mirror;
    this.config = loadConfig({ KILN_DATA_DIR: dataDir, ...env });
  }

  /**
   * `webStreams` serves the app without the node bindings (`c.env.incoming`), as a wrapper
   * calling `app.fetch(request)` does, so request bodies arrive as web streams only.
   */
  static async start(
    options: {
      env?: Record<string, string>;
      clock?: ManualClock;
      webStreams?: boolean;
      /** The pull-through mirror's upstreams (none when absent). */
      mirror?: MirrorConfig;
    } = {},
  ): Promise<RegistryHarness> {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'kiln-registry-'));
    const h = new RegistryHarness(
      dataDir,
      options.clock ?? new ManualClock(),
      options.env ?? {},
      options.webStreams ?? false,
      options.mirror,
    );
    await h.open();
    return h;
  }

  /** `127.0.0.1:<port>`, as clients name the registry. */
  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `http://${this.host}`;
  }

  async open(): Promise<void> {
    this.keys = await loadOrCreateKeys(this.dataDir);
    this.apiTokens = new ApiTokenService({ key: this.keys.api, clock: this.clock });
    this.db = openDatabase(path.join(this.dataDir, 'kiln.db'));
    this.tokens = new RegistryTokenService({
      key: this.keys.registry,
      audience: this.config.registry.service,
      clock: this.clock,
    });
    this.registry = await createRegistry({
      db: this.db,
      dataDir: this.dataDir,
      tokens: this.tokens,
      config: this.config,
      clock: this.clock,
      scheduler: this.clock,
      logger: pino({ level: 'silent' }),
      buildActivity: this.activity,
      apiTokens: this.apiTokens,
      baseImageFailures: this.baseImageFailures,
      ...(this.mirror === undefined ? {} : { mirror: this.mirror }),
    });
    const root = new Hono().route('/v2', this.registry.app);
    const server = await new Promise<ServerType>((resolve) => {
      const fetch = this.webStreams ? (request: Request) => root.fetch(request) : root.fetch;
      const s = serve({ fetch, hostname: '127.0.0.1', port: this.port }, () => {
        resolve(s);
      });
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stops the server, the registry and the database (the data directory stays). */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (server !== null) {
      await new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        if ('closeAllConnections' in server) server.closeAllConnections();
      });
    }
    await this.registry.close();
    if (this.db.open) this.db.close();
  }

  /** A daemon restart: everything closed and opened again on the same data directory. */
  async restart(): Promise<void> {
    await this.stop();
    await this.open();
  }

  async close(): Promise<void> {
    await this.stop();
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** An API token for `tenant` with `scopes`, signed by the daemon's API key. */
  apiToken(tenant: string, scopes: ApiScope[], ttlSeconds = 3600): Promise<string> {
    return this.apiTokens.create({ tenant, scopes, ttlSeconds });
  }

  /**
   * A build token for the running attempt of an active build (mark it finished with
   * `activity.active.delete`, re-run it with `activity.rerun`).
   */
  async buildToken(input: Parameters<typeof registryTestBuild>[0]): Promise<string> {
    return new BuildTokenService(this.tokens).issueBuildToken(
      registryTestBuild(input),
      this.activity.attempt(input.id),
    );
  }

  /** Basic credentials carrying `token` as the password. */
  static basic(token: string, user = 'kiln'): string {
    return `Basic ${Buffer.from(`${user}:${token}`).toString('base64')}`;
  }

  /** A registry token from /v2/token for `scopes` using `token` as the Basic password. */
  async exchange(token: string, scopes: string[]): Promise<string> {
    const query = scopes.map((s) => `scope=${encodeURIComponent(s)}`).join('&');
    const res = await fetch(`${this.url}/v2/token?service=kiln&${query}`, {
      headers: { authorization: RegistryHarness.basic(token) },
    });
    if (res.status !== 200) throw new Error(`token endpoint answered ${res.status}`);
    const body = (await res.json()) as { token: string };
    return body.token;
  }
}
