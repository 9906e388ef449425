import { randomBytes } from 'node:crypto';
import { copyFile, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dockerIoMirror } from '../helpers/docker-io-mirror.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { skopeoPull, skopeoSeed } from '../helpers/skopeo-pull.js';

/*
 * An upstream whose own storage went bad: Debian's Distribution on loopback serves whatever
 * its files hold, so a test corrupts them after pushing (a flipped byte in a layer, another
 * image's bytes in a manifest) and pulls through Kiln with skopeo and with a build's token.
 */

let tmp: string;
let authFile: string;
let dist: DistributionRegistry;
let layered: OciLayout;
let other: OciLayout;
let h: RegistryHarness;
let token: string;

function seed(layout: OciLayout, dest: string): Promise<void> {
  return skopeoSeed(authFile, `${dist.user}:${dist.password}`, [`oci:${layout.dir}:latest`], dest);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-mirror-corrupt-'));
  authFile = path.join(tmp, 'auth.json');
  await writeFile(authFile, '{}');
  dist = await startDistribution();
  layered = await writeOciLayout(
    path.join(tmp, 'layered'),
    { payload: randomBytes(2 * 1024 * 1024) },
    { uncompressed: true },
  );
  other = await writeOciLayout(path.join(tmp, 'other'), { other: 'another image\n' });
  await seed(layered, `docker://${dist.host}/library/layered:1`);
  await seed(other, `docker://${dist.host}/library/other:1`);
  await seed(layered, `docker://${dist.host}/library/twin:1`);
}, 120_000);

afterAll(async () => {
  await dist.close();
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  h = await RegistryHarness.start({ mirror: await dockerIoMirror(dist, dist.url, tmp) });
  token = await h.buildToken({ id: 'b_corrupt', tenant: 'acme', repository: 'acme/app' });
});

afterEach(async () => {
  await h.close();
});

function pull(ref: string, dest: string) {
  return skopeoPull(authFile, token, `docker://${h.host}/${ref}`, dest);
}

function storedBlobPath(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(h.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

function rowCount(sql: string, ...params: string[]): number {
  return (h.db.prepare(sql).get(...params) as { n: number }).n;
}

/** Runs `body` with Distribution's file of `digest` replaced by `bytes`, then puts it back. */
async function withUpstreamFile(
  digest: string,
  bytes: (original: Buffer) => Buffer,
  body: () => Promise<void>,
): Promise<void> {
  const file = dist.blobDataPath(digest);
  const backup = path.join(tmp, `backup-${digest.slice(7, 19)}`);
  await copyFile(file, backup);
  try {
    await writeFile(file, bytes(await readFile(backup)));
    await body();
  } finally {
    await copyFile(backup, file);
    await rm(backup, { force: true });
  }
}

describe('a corrupted upstream', () => {
  it('refuses a layer whose bytes do not match its digest, stores nothing, and works once repaired', async () => {
    const layer = layered.layerDigest;
    await withUpstreamFile(
      layer,
      (original) => {
        const flipped = Buffer.from(original);
        flipped[flipped.length >> 1] = (flipped[flipped.length >> 1] ?? 0) ^ 0x01;
        return flipped;
      },
      async () => {
        const dest = path.join(tmp, `bad-${Date.now()}`);
        const run = await pull('mirror/docker.io/library/layered:1', dest);
        // The layer's response was cut before its last byte (skopeo says "unexpected EOF"):
        // no client ever holds the whole of a blob that turned out wrong.
        expect(run.ok).toBe(false);
        expect(run.stderr).toMatch(/unexpected EOF/);
        await rm(dest, { recursive: true, force: true });
        await expect(stat(storedBlobPath(layer))).rejects.toThrow();
        expect(rowCount('SELECT COUNT(*) AS n FROM registry_blobs WHERE digest = ?', layer)).toBe(
          0,
        );
        expect(await readdir(path.join(h.dataDir, 'registry', 'mirror-downloads'))).toEqual([]);
        // What a build that pulled it is told: the image and the cause, from the registry.
        const failure = h.baseImageFailures.take('b_corrupt');
        expect(failure).toMatchObject({ image: 'docker.io/library/layered', cause: 'invalid' });
        expect(failure?.message).toMatch(/whose digest is sha256:[a-f0-9]{64}; it was refused/);
      },
    );
    const dest = path.join(tmp, `good-${Date.now()}`);
    const run = await pull('mirror/docker.io/library/layered:1', dest);
    expect(run.stderr).toBe('');
    expect(run.ok).toBe(true);
    const expected = await readFile(path.join(layered.dir, 'blobs', 'sha256', layer.slice(7)));
    expect((await readFile(path.join(dest, layer.slice(7)))).equals(expected)).toBe(true);
    expect((await readFile(storedBlobPath(layer))).equals(expected)).toBe(true);
    await rm(dest, { recursive: true, force: true });
  });

  it('refuses a manifest whose bytes are not the digest asked for, by digest and by tag', async () => {
    const wanted = layered.manifestDigest;
    const otherManifest = await readFile(
      path.join(other.dir, 'blobs', 'sha256', other.manifestDigest.slice(7)),
    );
    // twin:1 is the same image as layered:1: its manifest file now holds other's manifest.
    await withUpstreamFile(
      wanted,
      () => otherManifest,
      async () => {
        const byDigest = await fetch(
          `${h.url}/v2/mirror/docker.io/library/twin/manifests/${wanted}`,
          {
            headers: { authorization: `Bearer ${token}` },
          },
        );
        expect(byDigest.status).toBe(502);
        const error = ((await byDigest.json()) as { errors: { code: string; message: string }[] })
          .errors[0];
        expect(error?.code).toBe('MANIFEST_INVALID');
        expect(error?.message).toBe(
          `upstream docker.io sent a manifest for library/twin@${wanted} whose digest is ${other.manifestDigest}; it was refused`,
        );

        const byTag = await fetch(`${h.url}/v2/mirror/docker.io/library/twin/manifests/1`, {
          headers: { authorization: `Bearer ${token}` },
        });
        expect(byTag.status).toBe(502);
        expect(((await byTag.json()) as { errors: { message: string }[] }).errors[0]?.message).toBe(
          `upstream docker.io sent a manifest for library/twin:1 that does not match its Docker-Content-Digest ${wanted}; it was refused`,
        );
        // skopeo does not read the body of a 5xx answer; it fails on the status.
        const dest = path.join(tmp, `bad-manifest-${Date.now()}`);
        const run = await pull('mirror/docker.io/library/twin:1', dest);
        expect(run.ok).toBe(false);
        expect(run.stderr).toContain('502 Bad Gateway');
        await rm(dest, { recursive: true, force: true });
        expect(
          rowCount(
            'SELECT COUNT(*) AS n FROM registry_manifests WHERE digest IN (?, ?)',
            wanted,
            other.manifestDigest,
          ),
        ).toBe(0);
        expect(rowCount('SELECT COUNT(*) AS n FROM registry_tags')).toBe(0);
        expect(h.baseImageFailures.take('b_corrupt')).toMatchObject({
          image: `docker.io/library/twin@${wanted}`,
          cause: 'invalid',
        });
      },
    );
    const dest = path.join(tmp, `good-manifest-${Date.now()}`);
    const run = await pull('mirror/docker.io/library/twin:1', dest);
    expect(run.stderr).toBe('');
    expect(run.ok).toBe(true);
    expect(
      (await readFile(path.join(dest, 'manifest.json'))).equals(
        await readFile(path.join(layered.dir, 'blobs', 'sha256', wanted.slice(7))),
      ),
    ).toBe(true);
    await rm(dest, { recursive: true, force: true });
  });
});
