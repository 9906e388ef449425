import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { dockerIoMirror } from '../helpers/docker-io-mirror.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { writeOciIndexLayout, type OciIndexLayout } from '../helpers/mirror-oci-index.js';
import { UpstreamProxy } from '../helpers/mirror-upstream-proxy.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { skopeoPull, skopeoSeed } from '../helpers/skopeo-pull.js';

/*
 * The mirror's prefetch: once it serves an image manifest it does not hold the blobs of, it
 * fetches them from the upstream in the background, so the client's blob requests join those
 * downloads. Debian's Distribution on loopback behind the counting, byte-flipping, stalling
 * proxy is the upstream.
 */

let tmp: string;
let authFile: string;
let dist: DistributionRegistry;
let image: OciLayout;
let node: OciIndexLayout;
let proxy: UpstreamProxy;
let h: RegistryHarness;
let token: string;

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-mirror-prefetch-'));
  authFile = path.join(tmp, 'auth.json');
  await writeFile(authFile, '{}');
  dist = await startDistribution();
  image = await writeOciLayout(
    path.join(tmp, 'image'),
    { payload: randomBytes(4 * 1024 * 1024) },
    { uncompressed: true },
  );
  node = await writeOciIndexLayout(path.join(tmp, 'node'), ['amd64', 'arm64']);
  const seeds: [string[], string][] = [
    [[`oci:${image.dir}:latest`], 'library/app:1'],
    [['--all', `oci:${node.dir}:latest`], 'library/node:22-slim'],
  ];
  for (const [from, to] of seeds) {
    await skopeoSeed(
      authFile,
      `${dist.user}:${dist.password}`,
      from,
      `docker://${dist.host}/${to}`,
    );
  }
}, 120_000);

afterAll(async () => {
  await dist.close();
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  proxy = await UpstreamProxy.start(dist.url);
  h = await RegistryHarness.start({ mirror: await dockerIoMirror(dist, proxy.url, tmp) });
  token = await h.buildToken({ id: 'b_prefetch', tenant: 'acme', repository: 'acme/app' });
});

afterEach(async () => {
  await h.close();
  await proxy.stop();
});

function get(pathname: string, method = 'GET'): Promise<Response> {
  return fetch(`${h.url}/v2/${pathname}`, {
    method,
    headers: { authorization: `Bearer ${token}` },
  });
}

async function getManifest(pathname: string, method = 'GET'): Promise<void> {
  const res = await get(pathname, method);
  expect(res.status).toBe(200);
  await res.arrayBuffer();
}

function storedBlobPath(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(h.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

function blobRows(digest: string): number {
  return (
    h.db.prepare('SELECT COUNT(*) AS n FROM registry_blobs WHERE digest = ?').get(digest) as {
      n: number;
    }
  ).n;
}

async function layoutBlob(digest: string): Promise<Buffer> {
  return readFile(path.join(image.dir, 'blobs', 'sha256', digest.slice(7)));
}

describe('the mirror prefetch', () => {
  it('fetches the blobs of a served image manifest before the client asks, once each', async () => {
    await getManifest('mirror/docker.io/library/app/manifests/1');
    // No blob was asked for, yet the upstream is asked for the config and the layer.
    await expect
      .poll(() => [proxy.blobGets.get(image.configDigest), proxy.blobGets.get(image.layerDigest)])
      .toEqual([1, 1]);
    await expect.poll(() => h.registry.mirror.prefetchesPending).toBe(0);
    expect(blobRows(image.layerDigest)).toBe(1);

    const res = await get(`mirror/docker.io/library/app/blobs/${image.layerDigest}`);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(await layoutBlob(image.layerDigest))).toBe(
      true,
    );
    expect(proxy.blobGets.get(image.layerDigest)).toBe(1);
    // Stored blobs are not prefetched again.
    await getManifest(`mirror/docker.io/library/app/manifests/${image.manifestDigest}`);
    expect(h.registry.mirror.prefetchesPending).toBe(0);
  });

  it('keeps one upstream GET per blob when skopeo pulls while the prefetch runs', async () => {
    const dest = path.join(tmp, `pull-${Date.now()}`);
    const run = await skopeoPull(
      authFile,
      token,
      'docker://' + `${h.host}/mirror/docker.io/library/app:1`,
      dest,
    );
    expect(run.stderr).toBe('');
    expect(run.ok).toBe(true);
    const layer = await readFile(path.join(dest, image.layerDigest.slice(7)));
    expect(layer.equals(await layoutBlob(image.layerDigest))).toBe(true);
    await rm(dest, { recursive: true, force: true });
    await expect.poll(() => h.registry.mirror.prefetchesPending).toBe(0);
    expect(Object.fromEntries(proxy.blobGets)).toEqual({
      [image.configDigest]: 1,
      [image.layerDigest]: 1,
    });
  });

  it('prefetches nothing for an index, nor for a HEAD', async () => {
    await getManifest('mirror/docker.io/library/node/manifests/22-slim');
    await getManifest('mirror/docker.io/library/app/manifests/1', 'HEAD');
    expect(h.registry.mirror.prefetchesPending).toBe(0);
    expect(h.registry.mirror.downloadsInFlight).toBe(0);
    expect(proxy.blobGets.size).toBe(0);
    // The platform manifest a client picks is an image manifest: its blobs are prefetched.
    const amd64 = node.platforms.amd64!;
    await getManifest(`mirror/docker.io/library/node/manifests/${amd64.manifestDigest}`);
    await expect.poll(() => proxy.blobGets.get(amd64.layerDigest)).toBe(1);
  });

  it('refuses a corrupted blob under prefetch: nothing stored, and the client is not served it', async () => {
    proxy.corrupt.add(image.layerDigest);
    await getManifest('mirror/docker.io/library/app/manifests/1');
    await expect.poll(() => proxy.blobGets.get(image.layerDigest)).toBe(1);
    await expect.poll(() => h.registry.mirror.prefetchesPending).toBe(0);
    expect(blobRows(image.layerDigest)).toBe(0);
    await expect(stat(storedBlobPath(image.layerDigest))).rejects.toThrow();
    expect(await readdir(path.join(h.dataDir, 'registry', 'mirror-downloads'))).toEqual([]);

    // The client's own GET fetches again (the refused download is not joined): still bad, so
    // its response is cut before the last byte and nothing is stored.
    const bad = await get(`mirror/docker.io/library/app/blobs/${image.layerDigest}`);
    expect(bad.status).toBe(200);
    await expect(bad.arrayBuffer()).rejects.toThrow();
    expect(proxy.blobGets.get(image.layerDigest)).toBe(2);
    expect(blobRows(image.layerDigest)).toBe(0);

    proxy.corrupt.clear();
    const good = await get(`mirror/docker.io/library/app/blobs/${image.layerDigest}`);
    expect(Buffer.from(await good.arrayBuffer()).equals(await layoutBlob(image.layerDigest))).toBe(
      true,
    );
    await expect.poll(() => blobRows(image.layerDigest)).toBe(1);
    expect(proxy.blobGets.get(image.layerDigest)).toBe(3);
  });

  it('shuts down cleanly while a prefetch hangs on the upstream, leaving nothing behind', async () => {
    await withoutUnhandledErrors(async () => {
      proxy.stall.add(image.layerDigest);
      await getManifest('mirror/docker.io/library/app/manifests/1');
      await expect.poll(() => proxy.blobGets.get(image.layerDigest)).toBe(1);
      expect(h.registry.mirror.prefetchesPending).toBeGreaterThan(0);
      await h.stop();
    });
    expect(h.registry.mirror.prefetchesPending).toBe(0);
    expect(h.registry.mirror.downloadsInFlight).toBe(0);
    expect(await readdir(path.join(h.dataDir, 'registry', 'mirror-downloads'))).toEqual([]);
    await expect(stat(storedBlobPath(image.layerDigest))).rejects.toThrow();
  });

  it('shuts down cleanly right after serving a manifest, its prefetch requests just sent', async () => {
    // Small blobs: some downloads are done, their sockets back in the keep-alive pool, when
    // the shutdown aborts them.
    const amd64 = node.platforms.amd64!;
    await withoutUnhandledErrors(async () => {
      await getManifest(`mirror/docker.io/library/node/manifests/${amd64.manifestDigest}`);
      await h.stop();
    });
    expect(h.registry.mirror.prefetchesPending).toBe(0);
    expect(await readdir(path.join(h.dataDir, 'registry', 'mirror-downloads'))).toEqual([]);
  });
});

/**
 * Runs `body` and the few turns of the event loop after it in which what it set off settles,
 * failing on any unhandled rejection or uncaught exception in that time.
 */
async function withoutUnhandledErrors(body: () => Promise<void>): Promise<void> {
  const unhandled: unknown[] = [];
  const record = (err: unknown) => {
    unhandled.push(err);
  };
  process.on('unhandledRejection', record);
  process.on('uncaughtException', record);
  try {
    await body();
    for (let i = 0; i < 10; i++) await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('unhandledRejection', record);
    process.off('uncaughtException', record);
  }
  expect(unhandled).toEqual([]);
}
