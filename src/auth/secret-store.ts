import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Database, Statement } from 'better-sqlite3';
import { createPrivateFile } from './create-private-file.js';
import { openValue, sealValue } from './sealed-value.js';
import type { Clock } from '../../common/time/clock.js';
import { AppError } from '../errors/app-error.js';

/** Secret ids: what BuildKit/Buildah accept in `--mount=type=secret,id=…`, kept simple. */
export const SECRET_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
/** Largest secret value accepted (bytes of UTF-8). */
const MAX_SECRET_BYTES = 64 * 1024;

const KEY_BYTES = 32;

interface SecretRow {
  id: string;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

/**
 * Loads the AES-256 key that encrypts secrets at rest (`<dataDir>/keys/secrets.key`, mode
 * 0600), generating it on first start; never overwritten.
 */
export async function loadOrCreateSecretKey(dataDir: string): Promise<Buffer> {
  const dir = path.join(dataDir, 'keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, 'secrets.key');
  await createPrivateFile(file, randomBytes(KEY_BYTES).toString('base64'));
  const key = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
  if (key.length !== KEY_BYTES) throw new Error(`secret key file ${file} is not a 32-byte key`);
  return key;
}

/**
 * Tenants' build secrets, AES-256-GCM encrypted in SQLite (the id and tenant are the
 * additional authenticated data, so a row cannot be moved to another tenant or id).
 * Values leave this class only for a build's start message.
 */
export class SecretStore {
  private readonly upsertStmt: Statement;
  private readonly getStmt: Statement<[string, string], SecretRow>;
  private readonly listStmt: Statement<[string], { id: string; updated_at: number }>;
  private readonly deleteStmt: Statement<[string, string]>;

  constructor(
    db: Database,
    private readonly key: Buffer,
    private readonly clock: Clock,
  ) {
    if (key.length !== KEY_BYTES) throw new RangeError('the secret key must be 32 bytes');
    this.upsertStmt = db.prepare(
      `INSERT INTO secrets (tenant, id, iv, tag, ciphertext, created_at, updated_at)
       VALUES (@tenant, @id, @iv, @tag, @ciphertext, @now, @now)
       ON CONFLICT (tenant, id) DO UPDATE SET iv = excluded.iv, tag = excluded.tag,
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
    );
    this.getStmt = db.prepare(
      'SELECT id, iv, tag, ciphertext FROM secrets WHERE tenant = ? AND id = ?',
    );
    this.listStmt = db.prepare('SELECT id, updated_at FROM secrets WHERE tenant = ? ORDER BY id');
    this.deleteStmt = db.prepare('DELETE FROM secrets WHERE tenant = ? AND id = ?');
  }

  /** Stores (or replaces) a secret; returns true when it was created. */
  put(tenant: string, id: string, value: string): boolean {
    if (!SECRET_ID_PATTERN.test(id)) throw new AppError('INVALID_SECRET', 'Invalid secret id.');
    if (Buffer.byteLength(value, 'utf8') > MAX_SECRET_BYTES) {
      throw new AppError(
        'INVALID_SECRET',
        `Secret values are limited to ${MAX_SECRET_BYTES} bytes.`,
      );
    }
    const existed = this.getStmt.get(tenant, id) !== undefined;
    this.upsertStmt.run({
      tenant,
      id,
      ...sealValue(this.key, value, aad(tenant, id)),
      now: this.clock.now().getTime(),
    });
    return !existed;
  }

  list(tenant: string): { id: string; updatedAt: Date }[] {
    return this.listStmt.all(tenant).map((r) => ({ id: r.id, updatedAt: new Date(r.updated_at) }));
  }

  has(tenant: string, id: string): boolean {
    return this.getStmt.get(tenant, id) !== undefined;
  }

  /** Removes a secret; false when there was none. */
  delete(tenant: string, id: string): boolean {
    return this.deleteStmt.run(tenant, id).changes > 0;
  }

  /** Decrypts the named secrets; throws UNKNOWN_SECRET naming the first missing one. */
  values(tenant: string, ids: readonly string[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const id of ids) {
      const row = this.getStmt.get(tenant, id);
      if (!row)
        throw new AppError('UNKNOWN_SECRET', `Secret ${JSON.stringify(id)} does not exist.`);
      out[id] = openValue(this.key, row, aad(tenant, id));
    }
    return out;
  }
}

function aad(tenant: string, id: string): Buffer {
  return Buffer.from(`kiln-secret\0${tenant}\0${id}`, 'utf8');
}
