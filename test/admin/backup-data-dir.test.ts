import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backupDataDir } from '../../src/admin/backup-data-dir.js';
import { restoreDataDir } from '../../src/admin/restore-data-dir.js';
import type { ApiScope } from '../../src/auth/scopes.js';
import { runCli } from '../../src/cli/run-cli.js';
import { loadConfig } from '../../src/config/config.js';
import { createDaemon, type Daemon, type DaemonAddress } from '../../src/daemon.js';
import { createLogger } from '../../src/telemetry/create-logger.js';
import { eventually } from '../helpers/api-server.js';
import { FakeBuildRunner, okOutcome } from '../helpers/fake-build-runner.js';
import { ManualClock } from '../helpers/manual-clock.js';
import { runClient } from '../helpers/registry-clients.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { sampleTar } from '../helpers/tar-builder.js';

/** Discards the daemons' logs. */
const quiet = new Writable({
  write(_chunk, _encoding, done) {
    done();
  },
});

let tmp: string;
let layout: OciLayout;
let authFile: string;
const daemons: Daemon[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  tmp = await mkdtemp(path.join(tmpdir(), 'kiln-backup-'));
  layout = await writeOciLayout(path.join(tmp, 'image'), {
    hello: '#!/bin/sh\necho restored\n',
  });
  authFile = path.join(tmp, 'auth.json');
  await writeFile(authFile, '{}');
});

afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

afterEach(async () => {
  for (const d of daemons.splice(0)) await d.close().catch(() => undefined);
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function freshDir(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(tmp, `${name}-`));
  dirs.push(dir);
  return dir;
}

async function startDaemon(
  dataDir: string,
): Promise<{ d: Daemon; address: DaemonAddress; runner: FakeBuildRunner }> {
  const config = loadConfig({ KILN_DATA_DIR: dataDir, KILN_HOST: '127.0.0.1', KILN_PORT: '0' });
  const clock = new ManualClock();
  const runner = new FakeBuildRunner();
  const d = await createDaemon(config, {
    logger: createLogger('warn', quiet),
    clock,
    scheduler: clock,
    runner,
  });
  daemons.push(d);
  return { d, address: await d.start(), runner };
}

function token(d: Daemon, tenant: string, scopes: ApiScope[]): Promise<string> {
  return d.apiTokens.create({ tenant, scopes, ttlSeconds: 3600 });
}

async function submit(url: string, apiToken: string): Promise<string> {
  const fd = new FormData();
  fd.append('source', new Blob([sampleTar()]), 'app.tar');
  const res = await fetch(`${url}/builds`, {
    method: 'POST',
    body: fd,
    headers: { authorization: `Bearer ${apiToken}` },
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { id: string }).id;
}

async function listBuilds(url: string, apiToken: string): Promise<{ id: string }[]> {
  const res = await fetch(`${url}/builds`, { headers: { authorization: `Bearer ${apiToken}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { builds: { id: string }[] }).builds;
}

function push(address: DaemonAddress, creds: string, target: string) {
  return runClient('skopeo', [
    'copy',
    '--authfile',
    authFile,
    '--dest-tls-verify=false',
    '--dest-creds',
    `kiln:${creds}`,
    `oci:${layout.dir}:latest`,
    `docker://${address.host}:${address.port}/${target}`,
  ]);
}

/** CLI streams collected in memory. */
function cliIo(env: Record<string, string>) {
  const out = { stdout: '', stderr: '' };
  return {
    out,
    io: {
      env,
      stdout: (text: string) => (out.stdout += text),
      stderr: (text: string) => (out.stderr += text),
    },
  };
}

async function modeOf(file: string): Promise<number> {
  return (await stat(file)).mode & 0o777;
}

describe('kiln admin backup and restore', () => {
  it('backs up a running daemon; a daemon on the restored copy serves the image by digest and the same builds', async () => {
    const dataA = await freshDir('data-a');
    const a = await startDaemon(dataA);
    const admin = await token(a.d, 'ops', ['registry:admin']);
    const acme = await token(a.d, 'acme', ['builds:write', 'builds:read']);
    const pushed = await push(a.address, admin, 'library/tiny:1');
    expect(pushed.stderr).toBe('');
    expect(pushed.ok).toBe(true);

    a.d.secrets.put('acme', 'npm_token', 'kept-encrypted');
    const done = await submit(a.address.url, acme);
    await a.runner.waitForRuns(1);
    a.runner.runOf(done).finish(okOutcome(`acme/${done}:${done}`));
    await eventually(() => a.d.store.get(done)?.status === 'ready');
    // A second build is still running when the backup is taken.
    const running = await submit(a.address.url, acme);
    await a.runner.waitForRuns(2);
    const before = await listBuilds(a.address.url, acme);
    expect(before.map((b) => b.id)).toEqual([running, done]);

    const backup = path.join(await freshDir('backups'), 'nightly');
    const cli = cliIo({ KILN_DATA_DIR: dataA });
    expect(await runCli(['admin', 'backup', '--to', backup], cli.io)).toBe(0);
    expect(cli.out.stderr).toBe('');
    expect(cli.out.stdout).toContain('2 builds');
    // Written to a sibling first and renamed: nothing else is left beside it.
    expect(await readdir(path.dirname(backup))).toEqual(['nightly']);
    expect(await modeOf(path.join(backup, 'keys', 'api.jwk'))).toBe(0o600);
    expect(await modeOf(path.join(backup, 'kiln.db'))).toBe(0o600);

    // Pushed after the backup: not in it.
    expect((await push(a.address, admin, 'library/later:1')).ok).toBe(true);

    const dataB = path.join(await freshDir('restore'), 'data');
    const restore = cliIo({ KILN_DATA_DIR: dataB });
    expect(await runCli(['admin', 'restore', '--from', backup], restore.io)).toBe(0);
    expect(restore.out.stdout).toContain(`into ${dataB}`);
    const b = await startDaemon(dataB);

    // The keys came along: the tokens daemon A signed are valid on daemon B.
    const out = path.join(tmp, `pulled-${Date.now()}`);
    const pull = await runClient('skopeo', [
      'copy',
      '--authfile',
      authFile,
      '--src-tls-verify=false',
      '--src-creds',
      `kiln:${admin}`,
      `docker://${b.address.host}:${b.address.port}/library/tiny@${layout.manifestDigest}`,
      `dir:${out}`,
    ]);
    expect(pull.stderr).toBe('');
    expect(pull.ok).toBe(true);
    const layer = layout.layerDigest.replace('sha256:', '');
    expect(await readFile(path.join(out, layer))).toEqual(
      await readFile(path.join(layout.dir, 'blobs', 'sha256', layer)),
    );
    const later = await fetch(`${b.address.url}/v2/library/later/manifests/1`, {
      headers: { authorization: `Basic ${Buffer.from(`kiln:${admin}`).toString('base64')}` },
    });
    expect(later.status).toBe(404);

    expect((await listBuilds(b.address.url, acme)).map((b2) => b2.id)).toEqual([running, done]);
    // The secrets key came along: a stored secret still decrypts.
    expect(b.d.secrets.values('acme', ['npm_token'])).toEqual({ npm_token: 'kept-encrypted' });
    expect(b.d.store.get(done)?.status).toBe('ready');
    // The build that was running is run again by the restored daemon, from its copied source.
    await b.runner.waitForRuns(1);
    const rerun = b.runner.runOf(running).input.build;
    expect(rerun.source.path.startsWith(`${dataB}${path.sep}`)).toBe(true);
    expect((await stat(rerun.source.path)).size).toBe(rerun.source.sizeBytes);
  });

  it('refuses a target that exists or lies inside the data directory, and leaves nothing', async () => {
    const dataA = await freshDir('data-a');
    const a = await startDaemon(dataA);
    const target = await freshDir('exists');
    const clock = new ManualClock();
    await expect(backupDataDir({ dataDir: dataA, to: target, clock })).rejects.toMatchObject({
      code: 'BACKUP_TARGET_EXISTS',
    });
    await expect(
      backupDataDir({ dataDir: dataA, to: path.join(dataA, 'backup'), clock }),
    ).rejects.toMatchObject({ code: 'BACKUP_TARGET_INSIDE_DATA' });
    await expect(
      backupDataDir({ dataDir: path.join(tmp, 'nothing-here'), to: path.join(target, 'x'), clock }),
    ).rejects.toMatchObject({ code: 'BACKUP_NO_DATABASE' });
    expect(await readdir(target)).toEqual([]);
    expect(existsSync(path.join(dataA, 'backup'))).toBe(false);
    await a.d.close();
  });

  it('fails BACKUP_BLOB_MISSING when a blob a manifest names is gone, removing its partial copy', async () => {
    const dataA = await freshDir('data-a');
    const a = await startDaemon(dataA);
    const admin = await token(a.d, 'ops', ['registry:admin']);
    expect((await push(a.address, admin, 'library/tiny:1')).ok).toBe(true);
    const hex = layout.layerDigest.replace('sha256:', '');
    await rm(path.join(dataA, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex));
    const parent = await freshDir('backups');
    const cli = cliIo({ KILN_DATA_DIR: dataA });
    expect(await runCli(['admin', 'backup', '--to', path.join(parent, 'b')], cli.io)).toBe(1);
    expect(cli.out.stderr).toContain('BACKUP_BLOB_MISSING');
    expect(cli.out.stderr).toContain(layout.layerDigest);
    expect(await readdir(parent)).toEqual([]);
  });

  it('leaves out a blob no manifest names that was collected meanwhile, and says so', async () => {
    const dataA = await freshDir('data-a');
    const a = await startDaemon(dataA);
    const admin = await token(a.d, 'ops', ['registry:admin']);
    expect((await push(a.address, admin, 'library/tiny:1')).ok).toBe(true);
    // A blob uploaded without a manifest, whose file then goes as a GC sweep would remove it.
    const orphan = Buffer.from('no manifest names me\n');
    const digest = `sha256:${createHash('sha256').update(orphan).digest('hex')}`;
    const upload = await fetch(
      `${a.address.url}/v2/library/orphan/blobs/uploads/?digest=${digest}`,
      {
        method: 'POST',
        body: orphan,
        headers: {
          authorization: `Basic ${Buffer.from(`kiln:${admin}`).toString('base64')}`,
          'content-type': 'application/octet-stream',
        },
      },
    );
    expect(upload.status).toBe(201);
    const hex = digest.slice('sha256:'.length);
    await rm(path.join(dataA, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex));

    const backup = path.join(await freshDir('backups'), 'b');
    const cli = cliIo({ KILN_DATA_DIR: dataA });
    expect(await runCli(['admin', 'backup', '--to', backup], cli.io)).toBe(0);
    expect(cli.out.stderr).toContain('1 unreferenced blobs were collected during the copy');
    const record = JSON.parse(await readFile(path.join(backup, 'backup.json'), 'utf8')) as {
      blobs: number;
      blobsGone: number;
    };
    expect(record).toMatchObject({ blobs: 2, blobsGone: 1 });
    const db = new BetterSqlite3(path.join(backup, 'kiln.db'), { readonly: true });
    try {
      const row = db.prepare('SELECT digest FROM registry_blobs WHERE digest = ?').get(digest);
      expect(row).toBeUndefined();
    } finally {
      db.close();
    }
  });

  it('restores only a complete backup, and only into an empty directory', async () => {
    const dataA = await freshDir('data-a');
    const a = await startDaemon(dataA);
    const admin = await token(a.d, 'ops', ['registry:admin']);
    expect((await push(a.address, admin, 'library/tiny:1')).ok).toBe(true);
    const backup = path.join(await freshDir('backups'), 'b');
    await backupDataDir({ dataDir: dataA, to: backup, clock: new ManualClock() });

    const occupied = await freshDir('occupied');
    await writeFile(path.join(occupied, 'keep'), 'x');
    await expect(restoreDataDir({ from: backup, dataDir: occupied })).rejects.toMatchObject({
      code: 'RESTORE_TARGET_NOT_EMPTY',
    });
    expect(await readdir(occupied)).toEqual(['keep']);

    await expect(
      restoreDataDir({ from: occupied, dataDir: path.join(tmp, 'never') }),
    ).rejects.toMatchObject({ code: 'RESTORE_NOT_A_BACKUP' });

    const hex = layout.configDigest.replace('sha256:', '');
    await rm(path.join(backup, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex));
    const target = path.join(await freshDir('restore'), 'data');
    await expect(restoreDataDir({ from: backup, dataDir: target })).rejects.toMatchObject({
      code: 'RESTORE_INCOMPLETE',
    });
    expect(await readdir(path.dirname(target))).toEqual([]);
  });

  it('restores into an existing empty directory with the backup modes', async () => {
    const dataA = await freshDir('data-a');
    await startDaemon(dataA);
    const backup = path.join(await freshDir('backups'), 'b');
    await backupDataDir({ dataDir: dataA, to: backup, clock: new ManualClock() });
    const target = path.join(await freshDir('restore'), 'data');
    await mkdir(target);
    await restoreDataDir({ from: backup, dataDir: target });
    expect(await modeOf(target)).toBe(0o700);
    expect(await modeOf(path.join(target, 'keys', 'secrets.key'))).toBe(0o600);
    expect(existsSync(path.join(target, 'backup.json'))).toBe(false);
  });
});
