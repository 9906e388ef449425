import { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { accessForApiPrincipal } from '../../src/registry/registry-authenticator.js';
import { RegistryHarness } from '../helpers/registry-harness.js';

let h: RegistryHarness;

beforeEach(async () => {
  h = await RegistryHarness.start();
});

afterEach(async () => {
  await h.close();
});

describe('createRegistry', () => {
  it('keeps answering in the OCI error shape when mounted under a parent app with its own error handler', async () => {
    const parent = new Hono();
    parent.onError((_err, c) => c.json({ error: { code: 'INTERNAL' } }, 500));
    parent.notFound((c) => c.json({ error: { code: 'NOT_FOUND' } }, 404));
    parent.route('/v2', h.registry.app);
    const token = await h.buildToken({ id: 'b_mount', tenant: 'acme', repository: 'acme/web' });
    const res = await parent.request('/v2/acme/web/manifests/missing', {
      headers: { authorization: `Bearer ${token}`, host: 'kiln.example:8083' },
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      errors: [
        { code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { reference: 'missing' } },
      ],
    });
    const ping = await parent.request('/v2', { headers: { host: 'kiln.example:8083' } });
    expect(ping.status).toBe(401);
    expect(ping.headers.get('www-authenticate')).toBe(
      'Bearer realm="http://kiln.example:8083/v2/token",service="kiln"',
    );
  });

  it('can be closed twice', async () => {
    await h.registry.close();
    await h.registry.close();
  });
});

describe('accessForApiPrincipal', () => {
  it('gives registry:pull its tenant, registry:admin the base images, both the mirror, and reserved tenants nothing', () => {
    const scopes = new Set(['registry:pull', 'registry:admin'] as const);
    expect(accessForApiPrincipal({ tenant: 'acme', scopes, tokenId: 't1' })).toEqual([
      { type: 'repository', name: 'acme/*', actions: ['pull'] },
      { type: 'repository', name: 'library/*', actions: ['pull', 'push'] },
      { type: 'repository', name: 'mirror/*', actions: ['pull'] },
    ]);
    expect(
      accessForApiPrincipal({ tenant: 'acme', scopes: new Set(['builds:write']), tokenId: 't4' }),
    ).toEqual([]);
    expect(accessForApiPrincipal({ tenant: 'cache', scopes, tokenId: 't2' })).toEqual([]);
    expect(accessForApiPrincipal({ tenant: 'library', scopes, tokenId: 't3' })).toEqual([]);
    expect(accessForApiPrincipal({ tenant: 'mirror', scopes, tokenId: 't5' })).toEqual([]);
  });
});
