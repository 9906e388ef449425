import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiTokenService } from '../../src/auth/api-token-service.js';
import {
  API_AUDIENCE,
  loadOrCreateKeys,
  TOKEN_ALG,
  TOKEN_ISSUER,
  type KeySet,
} from '../../src/auth/key-store.js';
import { isValidRepositoryName } from '../../src/registry/repository-name.js';
import { ManualClock } from '../helpers/manual-clock.js';

let dir: string;
let keys: KeySet;
const clock = new ManualClock(Date.parse('2026-05-01T12:00:00Z'));

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-tok-'));
  keys = await loadOrCreateKeys(dir);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('ApiTokenService', () => {
  it('round-trips tenant and scopes', async () => {
    const svc = new ApiTokenService({ key: keys.api, clock });
    const token = await svc.create({
      tenant: 'acme',
      scopes: ['builds:read', 'registry:pull'],
      ttlSeconds: 60,
    });
    const p = await svc.verify(token);
    expect(p.tenant).toBe('acme');
    expect([...p.scopes].sort()).toEqual(['builds:read', 'registry:pull']);
    expect(p.tokenId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('answers a token verified before from memory only until it expires', async () => {
    const own = new ManualClock(Date.parse('2026-05-01T12:00:00Z'));
    const svc = new ApiTokenService({ key: keys.api, clock: own });
    const token = await svc.create({ tenant: 'acme', scopes: ['builds:read'], ttlSeconds: 60 });
    const first = await svc.verify(token);
    own.advance(59_000);
    expect(await svc.verify(token)).toBe(first);
    const [head, body, sig] = token.split('.') as [string, string, string];
    const flipped = `${sig.slice(0, -2)}${sig.endsWith('AA') ? 'AB' : 'AA'}`;
    await expect(svc.verify(`${head}.${body}.${flipped}`)).rejects.toMatchObject({
      code: 'INVALID_TOKEN',
    });
    own.advance(1_000);
    await expect(svc.verify(token)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
  });

  it('refuses tokens signed with the registry key or for another audience', async () => {
    const svc = new ApiTokenService({ key: keys.api, clock });
    const registrySigned = new ApiTokenService({ key: keys.registry, clock });
    const t1 = await registrySigned.create({
      tenant: 'acme',
      scopes: ['builds:read'],
      ttlSeconds: 60,
    });
    await expect(svc.verify(t1)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    const t2 = await new SignJWT({ scope: 'builds:read' })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer('kiln')
      .setAudience('kiln-registry')
      .setSubject('tenant:acme')
      .setJti('j')
      .setExpirationTime(Math.floor(clock.now().getTime() / 1000) + 60)
      .sign(keys.api.privateKey);
    await expect(svc.verify(t2)).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
    await expect(svc.verify('garbage')).rejects.toMatchObject({ code: 'INVALID_TOKEN' });
  });

  it('refuses reserved or malformed tenant names', async () => {
    const svc = new ApiTokenService({ key: keys.api, clock });
    for (const tenant of ['cache', 'library', 'Acme', '-x', 'a'.repeat(64), 'acme-', '-', 'a_b']) {
      await expect(
        svc.create({ tenant, scopes: ['builds:read'], ttlSeconds: 60 }),
      ).rejects.toMatchObject({
        code: 'BAD_REQUEST',
      });
    }
  });

  it('accepts a tenant only when it can be the first component of a repository name', async () => {
    const svc = new ApiTokenService({ key: keys.api, clock });
    for (const tenant of ['acme', 'a', 'acme-corp', 'acme--corp', '0day', 'a'.repeat(63)]) {
      const principal = await svc.verify(
        await svc.create({ tenant, scopes: ['builds:read'], ttlSeconds: 60 }),
      );
      expect(principal.tenant).toBe(tenant);
      expect(isValidRepositoryName(`${tenant}/app`), tenant).toBe(true);
    }
  });

  it('refuses an API token whose tenant the registry could not serve, even if well signed', async () => {
    const svc = new ApiTokenService({ key: keys.api, clock });
    const signedFor = (tenant: string) =>
      new SignJWT({ scope: 'builds:read' })
        .setProtectedHeader({ alg: TOKEN_ALG, kid: keys.api.kid })
        .setIssuer(TOKEN_ISSUER)
        .setAudience(API_AUDIENCE)
        .setSubject(`tenant:${tenant}`)
        .setJti('j')
        .setExpirationTime(Math.floor(clock.now().getTime() / 1000) + 60)
        .sign(keys.api.privateKey);
    expect((await svc.verify(await signedFor('acme'))).tenant).toBe('acme');
    await expect(svc.verify(await signedFor('acme-'))).rejects.toMatchObject({
      code: 'INVALID_TOKEN',
    });
  });
});
