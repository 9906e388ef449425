import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateKeys, type KeySet } from '../../src/auth/key-store.js';
import { RegistryTokenService } from '../../src/registry/registry-token-service.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('RegistryTokenService.verify', () => {
  let dir: string;
  let keys: KeySet;

  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-registry-tokens-'));
    keys = await loadOrCreateKeys(dir);
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

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

  it('never remembers a token it refused', async () => {
    const clock = new ManualClock();
    const tokens = new RegistryTokenService({ key: keys.registry, audience: 'kiln', clock });
    const other = new RegistryTokenService({ key: keys.registry, audience: 'elsewhere', clock });
    const { token } = await other.sign('api:acme:1', [], 60);
    await expect(tokens.verify(token)).rejects.toThrow('"aud"');
    await expect(tokens.verify(token)).rejects.toThrow('"aud"');
  });
});
