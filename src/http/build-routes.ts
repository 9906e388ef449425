import { mkdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { buildView } from './build-view.js';
import { receiveBuildUpload } from './receive-build-upload.js';
import { requireApiToken } from './require-api-token.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { SecretStore } from '../auth/secret-store.js';
import { newBuildId } from '../builds/build-id.js';
import type { BuildManager } from '../builds/build-manager.js';
import { cacheRepository, outputRepository } from '../builds/build-repositories.js';
import { parseBuildRequest } from '../builds/build-request-parser.js';
import { BUILD_STATUSES, type BuildStatus, type Build } from '../builds/build.js';
import type { Config } from '../config/config.js';
import { AppError } from '../errors/app-error.js';
import type { KilnMetrics } from '../telemetry/kiln-metrics.js';
import type { Clock } from '../time/clock.js';

/** Multipart framing and text fields on top of the source archive itself. */
const MULTIPART_OVERHEAD_BYTES = 4 * 1024 * 1024;

export interface BuildRoutesDeps {
  config: Config;
  manager: BuildManager;
  apiTokens: ApiTokenService;
  secrets: SecretStore;
  metrics: KilnMetrics;
  clock: Clock;
  /** Build id generator (tests pass a deterministic one). */
  newBuildId?: () => string;
}

/** POST/GET/DELETE /builds and GET /builds/:id (docs/contracts.md#builds). */
export function buildRoutes(deps: BuildRoutesDeps): Hono<ApiEnv> {
  const { config, manager, apiTokens, secrets } = deps;
  const nextId = deps.newBuildId ?? newBuildId;
  const buildsDir = path.join(config.server.dataDir, 'builds');
  const app = new Hono<ApiEnv>();
  const canWrite = requireApiToken(apiTokens, 'builds:write');
  const canRead = requireApiToken(apiTokens, 'builds:read');

  app.post('/builds', canWrite, async (c) => {
    const { tenant } = c.var.principal;
    const contentType = c.req.header('content-type') ?? '';
    if (!/^multipart\/form-data\s*;/i.test(contentType)) throw new AppError('NOT_MULTIPART');
    const declared = Number(c.req.header('content-length') ?? Number.NaN);
    if (declared > config.builds.maxSourceBytes + MULTIPART_OVERHEAD_BYTES) {
      throw new AppError('SOURCE_TOO_LARGE', undefined, {
        details: { limit: config.builds.maxSourceBytes },
      });
    }
    manager.assertCanQueue(tenant);
    const id = nextId();
    const dir = path.join(buildsDir, id);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    let committed = false;
    try {
      const upload = await receiveBuildUpload({
        request: c.req.raw,
        dir,
        limits: {
          maxSourceBytes: config.builds.maxSourceBytes,
          maxUnpackedBytes: config.builds.maxUnpackedBytes,
          maxEntries: config.builds.maxSourceEntries,
          maxPathBytes: config.builds.maxPathBytes,
        },
      });
      const { request, sourceSha256 } = parseBuildRequest(upload.fields, config.builds);
      if (sourceSha256 !== null && sourceSha256 !== upload.source.sha256) {
        throw new AppError('SOURCE_SHA256_MISMATCH', undefined, {
          details: { expected: sourceSha256, actual: upload.source.sha256 },
        });
      }
      for (const secretId of request.secretIds) {
        if (!secrets.has(tenant, secretId)) {
          throw new AppError(
            'UNKNOWN_SECRET',
            `Secret ${JSON.stringify(secretId)} does not exist.`,
            {
              details: { secret: secretId },
            },
          );
        }
      }
      const sourcePath = path.join(dir, 'source');
      await rename(upload.partialPath, sourcePath);
      const build: Build = {
        id,
        tenant,
        status: 'queued',
        request,
        source: { path: sourcePath, ...upload.source },
        repository: outputRepository(tenant, id, request.imageName),
        cacheRepository: cacheRepository(tenant, request.cacheScope),
        createdAt: deps.clock.now(),
        startedAt: null,
        finishedAt: null,
        attempts: 0,
        result: null,
        failure: null,
        timings: {},
      };
      manager.submit(build);
      committed = true;
      deps.metrics.uploadAccepted(upload.source.sizeBytes);
      c.var.logger.info(
        { buildId: id, sizeBytes: build.source.sizeBytes, compression: build.source.compression },
        'build accepted',
      );
      const view = manager.get(tenant, id);
      c.header('Location', `/builds/${id}`);
      return c.json(buildView(view.build, view.queuePosition), 202);
    } finally {
      if (!committed) await rm(dir, { recursive: true, force: true });
    }
  });

  app.get('/builds', canRead, (c) => {
    const status = c.req.query('status');
    if (status !== undefined && !(BUILD_STATUSES as readonly string[]).includes(status)) {
      throw new AppError('INVALID_FIELD', `status must be one of ${BUILD_STATUSES.join(', ')}.`);
    }
    const rawLimit = c.req.query('limit') ?? '20';
    if (!/^\d{1,3}$/.test(rawLimit) || Number(rawLimit) < 1 || Number(rawLimit) > 100) {
      throw new AppError('INVALID_FIELD', 'limit must be between 1 and 100.');
    }
    const page = manager.list({
      tenant: c.var.principal.tenant,
      status: status as BuildStatus | undefined,
      limit: Number(rawLimit),
      cursor: c.req.query('cursor'),
    });
    return c.json({
      builds: page.builds.map((b) => buildView(b, null)),
      next_cursor: page.nextCursor,
    });
  });

  app.get('/builds/:id', canRead, (c) => {
    const view = manager.get(c.var.principal.tenant, c.req.param('id'));
    return c.json(buildView(view.build, view.queuePosition));
  });

  app.delete('/builds/:id', canWrite, (c) => {
    const view = manager.cancel(c.var.principal.tenant, c.req.param('id'));
    return c.json(buildView(view.build, view.queuePosition), 202);
  });

  return app;
}
