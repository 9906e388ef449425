import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { Database } from 'better-sqlite3';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BlobStore } from '../../src/registry/blob-store.js';
import { parseDigest } from '../../src/registry/digest.js';
import { RegistryStore } from '../../src/registry/registry-store.js';
import { UploadSessions } from '../../src/registry/upload-sessions.js';
import { UploadSweeper } from '../../src/registry/upload-sweeper.js';
import { openDatabase } from '../../src/storage/database.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { sha256Digest } from '../helpers/registry-oci-content.js';

let dir: string;
let db: Database;
let clock: ManualClock;
let uploads: UploadSessions;
let sweeper: UploadSweeper;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'kiln-sweeper-'));
  db = openDatabase(':memory:');
  clock = new ManualClock();
  const blobs = new BlobStore(dir);
  await blobs.init();
  uploads = new UploadSessions({
    store: new RegistryStore(db, clock),
    blobs,
    clock,
    ttlSeconds: 600,
    logger: pino({ level: 'silent' }),
  });
  vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
  sweeper = new UploadSweeper({ uploads, logger: pino({ level: 'silent' }), intervalMs: 60_000 });
});

afterEach(async () => {
  await sweeper.close();
  vi.useRealTimers();
  db.close();
  await rm(dir, { recursive: true, force: true });
});

describe('UploadSweeper', () => {
  it('removes sessions idle past the TTL and their files on its interval, and keeps fresh ones', async () => {
    const stale = await uploads.start('acme/web');
    clock.advance(500_000);
    const fresh = await uploads.start('acme/web');
    sweeper.start();

    clock.advance(101_000);
    await vi.advanceTimersByTimeAsync(60_000);
    await sweeper.close();

    expect(() => uploads.get('acme/web', stale.id)).toThrow(/unknown or expired/);
    expect(uploads.get('acme/web', fresh.id).id).toBe(fresh.id);
    expect(await readdir(path.join(dir, 'uploads'))).toEqual([fresh.id]);
  });

  it('does nothing before its interval has elapsed', async () => {
    const session = await uploads.start('acme/web');
    sweeper.start();
    clock.advance(601_000);
    await vi.advanceTimersByTimeAsync(59_000);
    expect(await readdir(path.join(dir, 'uploads'))).toEqual([session.id]);
  });

  it('leaves the file of a monolithic upload that is still streaming alone', async () => {
    const content = Buffer.from('a monolithic upload, sent in two parts');
    let pulling!: () => void;
    const consumed = new Promise<void>((resolve) => {
      pulling = resolve;
    });
    // read() is first called once the upload pipes the body into its file.
    const body = new Readable({
      read() {
        pulling();
      },
    });
    const done = uploads.uploadWhole('acme/web', parseDigest(sha256Digest(content)), body);
    await consumed;
    body.push(content.subarray(0, 10));
    clock.advance(3_600_000);
    expect(await uploads.sweep()).toBe(0);
    expect(await readdir(path.join(dir, 'uploads'))).toHaveLength(1);
    body.push(content.subarray(10));
    body.push(null);
    expect(await done).toEqual({ size: content.length });
    expect(await readdir(path.join(dir, 'uploads'))).toEqual([]);
    expect(db.prepare('SELECT count(*) FROM registry_upload_sessions').pluck().get()).toBe(0);
  });
});
