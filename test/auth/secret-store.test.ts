import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadOrCreateSecretKey, SecretStore } from '../../src/auth/secret-store.js';
import { openDatabase } from '../../src/storage/database.js';
import { ManualClock } from '../helpers/manual-clock.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'kiln-sec-'));
});
afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('SecretStore', () => {
  it('encrypts at rest under a 0600 key file that survives restarts', async () => {
    const key = await loadOrCreateSecretKey(dir);
    expect(statSync(path.join(dir, 'keys', 'secrets.key')).mode & 0o777).toBe(0o600);
    const db = openDatabase(path.join(dir, 'kiln.db'));
    const clock = new ManualClock(0);
    new SecretStore(db, key, clock).put('acme', 'npm', 'very-secret-value');
    const raw = db.prepare<[], { ciphertext: Buffer }>('SELECT ciphertext FROM secrets').get()!;
    expect(raw.ciphertext.toString('latin1')).not.toContain('very-secret');
    const again = new SecretStore(db, await loadOrCreateSecretKey(dir), clock);
    expect(again.values('acme', ['npm'])).toEqual({ npm: 'very-secret-value' });
    db.close();
  });

  it('binds a value to its tenant and id, and names a missing secret', async () => {
    const db = openDatabase(':memory:');
    const store = new SecretStore(db, await loadOrCreateSecretKey(dir), new ManualClock(0));
    store.put('acme', 'a', 'x');
    db.prepare("UPDATE secrets SET id = 'b'").run();
    expect(() => store.values('acme', ['b'])).toThrow();
    expect(() => store.values('other', ['a'])).toThrow(
      expect.objectContaining({ code: 'UNKNOWN_SECRET' }),
    );
    expect(() => store.put('acme', '../x', 'v')).toThrow(
      expect.objectContaining({ code: 'INVALID_SECRET' }),
    );
    db.close();
  });
});
