import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeProtectedHeader, jwtVerify } from 'jose';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateKeys, type KeySet } from '../../src/auth/key-store.js';
import { RegistryTokenService } from '../../src/registry/registry-token-service.js';
import { ManualClock } from '../helpers/manual-clock.js';

let dir: string;
let keys: KeySet;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-registry-tokens-'));
  keys = await loadOrCreateKeys(dir);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('RegistryTokenService.verify', () => {
  it('answers a token verified before with the same claims, and refuses it once it expired', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const access = [{ type: 'repository' as const, name: 'acme/app', actions: ['pull'] }];
    const { token } = await tokens.sign('api:acme:1', access, 60, 'attempt-1');
    const first = await tokens.verify(token);
    expect(first).toMatchObject({ sub: 'api:acme:1', access, attempt: 'attempt-1' });
    clock.advance(59_000);
    expect(await tokens.verify(token)).toBe(first);
    clock.advance(1_000);
    await expect(tokens.verify(token)).rejects.toThrow('"exp"');
  });

  it('remembers a token it signed with the claims jose verifies in it, none of them shared with the caller', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const fresh = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const access = [{ type: 'repository' as const, name: 'acme/app', actions: ['pull', 'push'] }];
    const { token } = tokens.signNow('build:b_1', access, 60, 'attempt-1');
    access[0]?.actions.push('delete');
    const remembered = await tokens.verify(token);
    expect(remembered).toEqual(await fresh.verify(token));
    expect(remembered.access[0]?.actions).toEqual(['pull', 'push']);
    expect(Object.isFrozen(remembered.access[0])).toBe(true);
  });

  it('never remembers a token it refused', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const other = new RegistryTokenService({ key: keys.registry, audience: 'elsewhere', clock });
    const { token } = await other.sign('api:acme:1', [], 60);
    await expect(tokens.verify(token)).rejects.toThrow('"aud"');
    await expect(tokens.verify(token)).rejects.toThrow('"aud"');
  });
});

describe('RegistryTokenService.signNow', () => {
  it('signs an ES256 JWT that jose verifies with the public key, with every claim', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln-reg', clock });
    const access = [{ type: 'repository' as const, name: 'acme/app', actions: ['pull', 'push'] }];
    const { token, issuedAt, expiresIn } = tokens.signNow('build:b1', access, 90.7, 'attempt-1');
    const iat = Math.floor(clock.now().getTime() / 1000);
    expect(issuedAt).toEqual(clock.now());
    expect(expiresIn).toBe(90);
    expect(decodeProtectedHeader(token)).toEqual({
      alg: 'ES256',
      kid: keys.registry.kid,
      typ: 'JWT',
    });
    const { payload } = await jwtVerify(token, keys.registry.publicKey, {
      algorithms: ['ES256'],
      issuer: 'kiln',
      audience: 'kiln-reg',
      currentDate: clock.now(),
    });
    expect(payload).toEqual({
      access,
      attempt: 'attempt-1',
      iss: 'kiln',
      aud: 'kiln-reg',
      sub: 'build:b1',
      iat,
      nbf: iat,
      exp: iat + 90,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/) as unknown,
    });
  });

  it('leaves out the attempt claim of a token bound to no attempt, and gives each token its own jti', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const a = tokens.signNow('api:acme:1', [], 60);
    const b = tokens.signNow('api:acme:1', [], 60);
    const verify = async (token: string) =>
      (await jwtVerify(token, keys.registry.publicKey, { currentDate: clock.now() })).payload;
    const [pa, pb] = [await verify(a.token), await verify(b.token)];
    expect(pa).not.toHaveProperty('attempt');
    expect(pa.jti).not.toBe(pb.jti);
  });

  it('makes tokens that jose refuses once a byte of the payload or signature changed, or under another key', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const access = [{ type: 'repository' as const, name: 'acme/app', actions: ['pull'] }];
    const { token } = tokens.signNow('api:acme:1', access, 60);
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as {
      access: { actions: string[] }[];
    };
    claims.access[0]?.actions.push('push');
    const widened = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.${signature}`;
    const sig = Buffer.from(signature, 'base64url');
    sig[0] = (sig[0] ?? 0) ^ 1;
    const badSignature = `${header}.${payload}.${sig.toString('base64url')}`;
    const options = { currentDate: clock.now() };
    await expect(jwtVerify(widened, keys.registry.publicKey, options)).rejects.toThrow(
      'signature verification failed',
    );
    await expect(jwtVerify(badSignature, keys.registry.publicKey, options)).rejects.toThrow(
      'signature verification failed',
    );
    await expect(jwtVerify(token, keys.api.publicKey, options)).rejects.toThrow(
      'signature verification failed',
    );
    await expect(tokens.verify(widened)).rejects.toThrow('signature verification failed');
    expect(await tokens.verify(token)).toMatchObject({ sub: 'api:acme:1', access });
  });
});
