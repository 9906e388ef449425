import { Hono } from 'hono';
import type { ApiEnv } from './api-env.js';
import { buildView } from './build-view.js';
import { receiveBuildUpload } from './receive-build-upload.js';
import { rawRequestBody } from './request-body.js';
import { requireApiToken } from './require-api-token.js';
import { UploadSlots } from './upload-slots.js';
import type { ApiTokenService } from '../auth/api-token-service.js';
import type { BuildManager } from '../builds/build-manager.js';
import { BUILD_STATUSES, type BuildStatus } from '../builds/build.js';
import type { Config } from '../config/config.js';
import { AppError } from '../errors/app-error.js';

/** Multipart framing and text fields on top of the source archive itself. */
const MULTIPART_OVERHEAD_BYTES = 4 * 1024 * 1024;

export interface BuildRoutesDeps {
  config: Config;
  manager: BuildManager;
  apiTokens: ApiTokenService;
}

/**
 * POST/GET/DELETE /builds and GET /builds/:id (docs/contracts.md#builds). HTTP only: headers
 * and the multipart body in, views and status codes out; the manager accepts, stores and
 * removes.
 */
export function buildRoutes(deps: BuildRoutesDeps): Hono<ApiEnv> {
  const { config, manager, apiTokens } = deps;
  const app = new Hono<ApiEnv>();
  const canWrite = requireApiToken(apiTokens, 'builds:write');
  const canRead = requireApiToken(apiTokens, 'builds:read');
  const slots = new UploadSlots({
    perTenant: config.builds.maxUploadsPerTenant,
    total: config.builds.maxConcurrentUploads,
  });
  const limits = {
    maxSourceBytes: config.builds.maxSourceBytes,
    maxUnpackedBytes: config.builds.maxUnpackedBytes,
    maxEntries: config.builds.maxSourceEntries,
    maxPathBytes: config.builds.maxPathBytes,
  };

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
    const release = slots.acquire(tenant);
    let view;
    try {
      view = await manager.accept(tenant, (target) =>
        receiveBuildUpload({ request: c.req.raw, body: rawRequestBody(c), target, limits }),
      );
    } finally {
      release();
    }
    const { build } = view;
    c.var.logger.info(
      {
        buildId: build.id,
        sizeBytes: build.source.sizeBytes,
        compression: build.source.compression,
      },
      'build accepted',
    );
    c.header('Location', `/builds/${build.id}`);
    return c.json(buildView(build, view.queuePosition), 202);
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
