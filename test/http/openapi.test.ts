import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { OPENAPI_DOCUMENT } from '../../src/http/openapi-document.js';
import { createHarness, type Harness } from '../helpers/api-harness.js';

let h: Harness;
beforeEach(async () => {
  h = await createHarness();
});
afterEach(async () => {
  await h.close();
});

describe('/openapi.json', () => {
  it('describes every route registered on the app', () => {
    const paths = OPENAPI_DOCUMENT.paths as Record<string, Record<string, unknown>>;
    const routes = h.app.routes.filter((r) => r.method !== 'ALL');
    expect(routes.length).toBeGreaterThan(10);
    const missing: string[] = [];
    for (const route of routes) {
      // The registry is described as one entry: the OCI spec covers its routes.
      const openapiPath = route.path.startsWith('/v2')
        ? '/v2/'
        : route.path.replace(/:([A-Za-z_]+)/g, '{$1}');
      const method = route.path.startsWith('/v2') ? 'get' : route.method.toLowerCase();
      if (!paths[openapiPath]?.[method]) missing.push(`${route.method} ${route.path}`);
    }
    expect(missing).toEqual([]);
  });

  it('is served as JSON', async () => {
    const res = await h.app.request('/openapi.json');
    expect(res.status).toBe(200);
    expect(((await res.json()) as { openapi: string }).openapi).toBe('3.1.0');
  });
});
