import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Database } from 'better-sqlite3';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CacheDisks } from '../../src/caches/cache-disks.js';
import { CacheStore } from '../../src/caches/cache-store.js';
import { openDatabase } from '../../src/storage/database.js';
import { ManualClock } from '../helpers/manual-clock.js';

const run = promisify(execFile);
const MiB = 1024 ** 2;

describe('CacheDisks', () => {
  let dir: string;
  let db: Database;
  let clock: ManualClock;
  let attaches: boolean[];

  const make = () =>
    new CacheDisks({
      root: path.join(dir, 'caches'),
      store: new CacheStore(db),
      clock,
      logger: pino({ level: 'silent' }),
      defaultSizeBytes: 64 * MiB,
      gcThresholdPercent: 80,
      onAttach: (hit) => attaches.push(hit),
    });
  const scopeDir = (tenant: string, scope: string) => path.join(dir, 'caches', tenant, scope);

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'kiln-caches-'));
    db = openDatabase(path.join(dir, 'kiln.db'));
    clock = new ManualClock();
    attaches = [];
  });
  afterEach(async () => {
    db.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('gives a first build a fresh ext4 fork (a miss) and commits it as the scope disk', async () => {
    const caches = make();
    const fork = await caches.fork('acme', 'main', 'b_one');
    expect(fork.hit).toBe(false);
    expect(fork.path).toBe(path.join(scopeDir('acme', 'main'), 'forks', 'b_one.img'));
    await run('e2fsck', ['-n', '-f', fork.path]);
    clock.advance(1000);
    expect(await fork.commit()).toBe(true);
    const [disk] = await caches.list('acme');
    expect(disk).toMatchObject({
      scope: 'main',
      sizeBytes: 64 * MiB,
      committedBuildId: 'b_one',
      committedFile: 'disk-b_one.img',
      lastBuildId: 'b_one',
      committedAt: clock.now(),
    });
    expect(disk?.usedBytes).toBeGreaterThan(0);
    expect(await readdir(scopeDir('acme', 'main'))).toEqual(['disk-b_one.img', 'forks']);
    expect(attaches).toEqual([false]);
  });

  it('forks the committed disk for the next build (a hit) and leaves it untouched on discard', async () => {
    const caches = make();
    const first = await caches.fork('acme', 'main', 'b_one');
    await writeMarker(first.path, 'one');
    await first.commit();
    const second = await caches.fork('acme', 'main', 'b_two');
    expect(second.hit).toBe(true);
    expect(await readMarker(second.path)).toBe('one');
    await writeMarker(second.path, 'two');
    await second.discard();
    const committed = path.join(scopeDir('acme', 'main'), 'disk-b_one.img');
    expect(await readMarker(committed)).toBe('one');
    expect(await readdir(path.join(scopeDir('acme', 'main'), 'forks'))).toEqual([]);
    expect(attaches).toEqual([false, true]);
  });

  it('lets the last of two concurrent commits win and removes the disk it replaced', async () => {
    const caches = make();
    const a = await caches.fork('acme', 'main', 'b_a');
    const b = await caches.fork('acme', 'main', 'b_b');
    await writeMarker(a.path, 'a');
    await writeMarker(b.path, 'b');
    await Promise.all([a.commit(), b.commit()]);
    const disk = await caches.get('acme', 'main');
    expect(disk.committedBuildId).toBe('b_b');
    expect(await readdir(scopeDir('acme', 'main'))).toEqual(['disk-b_b.img', 'forks']);
    expect(await readMarker(path.join(scopeDir('acme', 'main'), 'disk-b_b.img'))).toBe('b');
  });

  it('never commits a fork taken before a prune or a delete', async () => {
    const caches = make();
    const before = await caches.fork('acme', 'main', 'b_one');
    await caches.prune('acme', 'main');
    expect(await before.commit()).toBe(false);
    expect((await caches.get('acme', 'main')).committedFile).toBeNull();

    const again = await caches.fork('acme', 'main', 'b_two');
    await caches.remove('acme', 'main');
    expect(await again.commit()).toBe(false);
    await expect(caches.get('acme', 'main')).rejects.toMatchObject({ code: 'CACHE_NOT_FOUND' });
    await expect(readdir(scopeDir('acme', 'main'))).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('answers CACHE_NOT_FOUND for another tenant’s scope', async () => {
    const caches = make();
    await (await caches.fork('acme', 'main', 'b_one')).commit();
    expect(await caches.list('other')).toEqual([]);
    await expect(caches.get('other', 'main')).rejects.toMatchObject({ code: 'CACHE_NOT_FOUND' });
    await expect(caches.prune('other', 'main')).rejects.toMatchObject({ code: 'CACHE_NOT_FOUND' });
    await expect(caches.remove('other', 'main')).rejects.toMatchObject({
      code: 'CACHE_NOT_FOUND',
    });
    expect((await caches.get('acme', 'main')).committedBuildId).toBe('b_one');
  });

  it('removes forks, unnamed disk files and row-less scopes at recovery, keeping the committed disk', async () => {
    const caches = make();
    const first = await caches.fork('acme', 'main', 'b_one');
    await writeMarker(first.path, 'one');
    await first.commit();
    await caches.fork('acme', 'main', 'b_crashed');
    // A crash between the rename and the row update leaves a disk file the row does not name.
    await writeFile(path.join(scopeDir('acme', 'main'), 'disk-b_half.img'), 'x');
    await mkdir(scopeDir('acme', 'orphan'), { recursive: true });

    const report = await make().recover();
    expect(report).toEqual({ removedForks: 1, removedFiles: 2 });
    expect(await readdir(scopeDir('acme', 'main'))).toEqual(['disk-b_one.img']);
    expect(await readdir(path.join(dir, 'caches', 'acme'))).toEqual(['main']);
    expect(await readMarker(path.join(scopeDir('acme', 'main'), 'disk-b_one.img'))).toBe('one');
  });

  it('sizes a new disk as the first build asks and keeps that size afterwards', async () => {
    const caches = make();
    const first = await caches.fork('acme', 'big', 'b_one', 256 * MiB);
    const { stdout } = await run('dumpe2fs', ['-h', first.path]);
    const blocks = Number(/Block count:\s+(\d+)/.exec(stdout)?.[1]);
    const blockSize = Number(/Block size:\s+(\d+)/.exec(stdout)?.[1]);
    expect(blocks * blockSize).toBe(256 * MiB);
    await first.commit();
    await (await caches.fork('acme', 'big', 'b_two', 512 * MiB)).discard();
    expect((await caches.get('acme', 'big')).sizeBytes).toBe(256 * MiB);
  });

  it('reports disk count, sizes and used bytes for the metrics', async () => {
    const caches = make();
    await (await caches.fork('acme', 'main', 'b_one')).commit();
    await caches.fork('acme', 'dev', 'b_two');
    const seen = caches.observe();
    expect(seen.disks).toBe(2);
    expect(seen.sizeBytes).toBe(128 * MiB);
    expect(seen.usedBytes).toBeGreaterThan(0);
  });
});

/** Writes /marker into an ext4 image with debugfs (the host never mounts a cache disk). */
async function writeMarker(image: string, text: string): Promise<void> {
  const local = `${image}.marker`;
  await writeFile(local, text);
  await run('debugfs', ['-w', '-R', `rm /marker`, image]).catch(() => undefined);
  await run('debugfs', ['-w', '-R', `write ${local} /marker`, image]);
  await rm(local);
}

async function readMarker(image: string): Promise<string> {
  const out = `${image}.out`;
  await run('debugfs', ['-R', `dump /marker ${out}`, image]);
  const text = await readFile(out, 'utf8');
  await rm(out);
  return text;
}
