import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { KilnMetrics } from '../../src/telemetry/kiln-metrics.js';
import { dockerIoMirror } from '../helpers/docker-io-mirror.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { UpstreamProxy } from '../helpers/mirror-upstream-proxy.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { skopeoPull, skopeoSeed } from '../helpers/skopeo-pull.js';

/*
 * The mirror's size limit against a real upstream on loopback (Distribution behind the
 * counting proxy): least recently used images are evicted past KILN_MIRROR_MAX_BYTES, what an
 * operator or tenant pushed and what a build in flight pulls are kept, and an evicted image is
 * fetched from the upstream again.
 */

const MiB = 1024 * 1024;
const GRACE_SECONDS = 60;
/** Room for two of the ~1 MiB images, not three. */
const MAX_BYTES = Math.round(2.5 * MiB);

let tmp: string;
let authFile: string;
let dist: DistributionRegistry;
const images: Record<'a' | 'b' | 'c' | 'd' | 'e', OciLayout> = {} as never;
let proxy: UpstreamProxy;
let h: RegistryHarness;
let pullToken: string;

function seed(layout: OciLayout, dest: string, creds: string): Promise<void> {
  return skopeoSeed(authFile, creds, [`oci:${layout.dir}:latest`], dest);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-mirror-evict-'));
  authFile = path.join(tmp, 'auth.json');
  await writeFile(authFile, '{}');
  dist = await startDistribution();
  for (const name of ['a', 'b', 'c', 'd', 'e'] as const) {
    images[name] = await writeOciLayout(
      path.join(tmp, name),
      { payload: randomBytes(MiB) },
      { uncompressed: true },
    );
    await seed(
      images[name],
      `docker://${dist.host}/library/${name}:1`,
      `${dist.user}:${dist.password}`,
    );
  }
}, 120_000);

afterAll(async () => {
  await dist.close();
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  proxy = await UpstreamProxy.start(dist.url);
  const mirror = await dockerIoMirror(dist, proxy.url, tmp, {
    KILN_MIRROR_MAX_BYTES: String(MAX_BYTES),
  });
  h = await RegistryHarness.start({
    mirror,
    env: {
      KILN_REGISTRY_GC_GRACE_SECONDS: String(GRACE_SECONDS),
      KILN_REGISTRY_GC_INTERVAL_SECONDS: '600',
    },
  });
  // An API token outlives every clock step the tests take.
  pullToken = await h.apiToken('acme', ['registry:pull'], 30 * 86_400);
});

afterEach(async () => {
  await h.close();
  await proxy.stop();
});

/** A GET with `token`: Basic for the long-lived API token, Bearer for a build's. */
function get(pathname: string, token = pullToken): Promise<Response> {
  const authorization = token === pullToken ? RegistryHarness.basic(token) : `Bearer ${token}`;
  return fetch(`${h.url}/v2/${pathname}`, { headers: { authorization } });
}

/** Pulls image `name` through the mirror as a client does: the manifest, then its blobs. */
async function pull(name: keyof typeof images, token = pullToken): Promise<void> {
  const image = images[name];
  const manifest = await get(`mirror/docker.io/library/${name}/manifests/1`, token);
  expect(manifest.status).toBe(200);
  expect(manifest.headers.get('docker-content-digest')).toBe(image.manifestDigest);
  await manifest.arrayBuffer();
  for (const digest of [image.configDigest, image.layerDigest]) {
    const res = await get(`mirror/docker.io/library/${name}/blobs/${digest}`, token);
    expect(res.status).toBe(200);
    const body = Buffer.from(await res.arrayBuffer());
    const expected = await readFile(path.join(image.dir, 'blobs', 'sha256', digest.slice(7)));
    expect(body.equals(expected)).toBe(true);
    // The client has the verified bytes before the mirror has stored them; wait for that.
    await expect.poll(() => stored(digest)).toBe(true);
  }
}

function stored(digest: string): boolean {
  return h.db.prepare('SELECT 1 FROM registry_blobs WHERE digest = ?').get(digest) !== undefined;
}

function storedBlobPath(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(h.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

async function onDisk(digest: string): Promise<boolean> {
  return stat(storedBlobPath(digest)).then(
    () => true,
    () => false,
  );
}

function mirrored(name: keyof typeof images): boolean {
  return (
    h.db
      .prepare(
        `SELECT 1 FROM registry_manifests m JOIN registry_repositories r ON r.id = m.repository_id
          WHERE r.name = ? AND m.digest = ?`,
      )
      .get(`mirror/docker.io/library/${name}`, images[name].manifestDigest) !== undefined
  );
}

/** Steps the clock past the grace period, so what was used before may be evicted. */
function pastGrace(): void {
  h.clock.advance((GRACE_SECONDS + 1) * 1000);
}

describe('mirror size limit', () => {
  it('evicts the least recently used image after a fill goes over the limit, and fetches it again', async () => {
    await pull('a');
    pastGrace();
    await pull('b');
    pastGrace();
    await pull('a'); // a is now more recent than b
    pastGrace();
    expect(h.registry.mirrorUsage().bytes).toBeLessThan(MAX_BYTES);
    await pull('c'); // the fill that crosses the limit queues an eviction
    await h.registry.evictMirror(); // runs after it
    expect(mirrored('b')).toBe(false);
    expect(mirrored('a')).toBe(true);
    expect(mirrored('c')).toBe(true);
    expect(await onDisk(images.b.layerDigest)).toBe(false);
    expect(await onDisk(images.a.layerDigest)).toBe(true);
    expect(await onDisk(images.c.layerDigest)).toBe(true);
    expect(h.registry.mirrorUsage().bytes).toBeLessThanOrEqual(MAX_BYTES);
    // The tag went with the manifest: a re-pull asks the upstream again, byte-identical.
    const before = proxy.blobGets.get(images.b.layerDigest);
    expect(before).toBe(1);
    const dest = path.join(tmp, `repull-${Date.now()}`);
    const run = await skopeoPull(
      authFile,
      pullToken,
      `docker://${h.host}/mirror/docker.io/library/b:1`,
      dest,
    );
    expect(run.stderr).toBe('');
    expect(run.ok).toBe(true);
    expect(proxy.blobGets.get(images.b.layerDigest)).toBe(2);
    expect(
      (await readFile(path.join(dest, images.b.layerDigest.slice(7)))).equals(
        await readFile(path.join(images.b.dir, 'blobs', 'sha256', images.b.layerDigest.slice(7))),
      ),
    ).toBe(true);
    await rm(dest, { recursive: true, force: true });
  });

  it('keeps what was used within the grace period, then evicts on the scheduled run', async () => {
    await pull('a');
    await pull('b');
    await pull('c'); // over the limit, but all three are within the grace period
    await h.registry.evictMirror();
    expect(mirrored('a') && mirrored('b') && mirrored('c')).toBe(true);
    expect(h.registry.mirrorUsage().bytes).toBeGreaterThan(MAX_BYTES);
    h.clock.advance(10_000);
    await pull('c'); // c is the most recent now
    // The periodic run (every KILN_REGISTRY_GC_INTERVAL_SECONDS on the injected scheduler).
    h.clock.advance(600_000);
    await expect.poll(() => h.registry.mirrorUsage().bytes <= MAX_BYTES).toBe(true);
    // a and b were used at the same moment: one goes (the digest breaks the tie), c stays.
    expect(mirrored('c')).toBe(true);
    expect([mirrored('a'), mirrored('b')].filter(Boolean)).toHaveLength(1);
  });

  it('writes the last use of a warm manifest at most once a minute, and evicts by the later use all the same', async () => {
    const usedAt = (name: keyof typeof images) =>
      (
        h.db
          .prepare(
            `SELECT m.used_at AS at FROM registry_manifests m
               JOIN registry_repositories r ON r.id = m.repository_id
              WHERE r.name = ? AND m.digest = ?`,
          )
          .get(`mirror/docker.io/library/${name}`, images[name].manifestDigest) as { at: number }
      ).at;
    const warm = async (name: keyof typeof images) => {
      const res = await get(`mirror/docker.io/library/${name}/manifests/1`);
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    };
    await pull('a'); // fetched from the upstream
    h.clock.advance(1000);
    await warm('a'); // served from the store: written
    const written = usedAt('a');
    h.clock.advance(1000);
    await pull('b');
    h.clock.advance(30_000);
    await warm('a'); // within a minute of the last write: not written, remembered
    expect(usedAt('a')).toBe(written);
    expect(usedAt('a')).toBeLessThan(usedAt('b'));
    pastGrace();
    await pull('c');
    await h.registry.evictMirror();
    // By the stored uses a would go; by the last uses b is the least recently used.
    expect(mirrored('b')).toBe(false);
    expect(mirrored('a') && mirrored('c')).toBe(true);
    // A minute after the last write, the next use is written.
    await warm('a');
    expect(usedAt('a')).toBe(h.clock.now().getTime());
  });

  it('never evicts what a build in flight was served, until the build ends', async () => {
    const build = await h.buildToken({ id: 'b_inflight', tenant: 'acme', repository: 'acme/app' });
    await pull('a', build);
    pastGrace();
    await pull('b');
    pastGrace();
    await pull('c');
    await h.registry.evictMirror();
    // a is the least recently used, but a running build pulled it: b goes instead.
    expect(mirrored('a')).toBe(true);
    expect(mirrored('b')).toBe(false);
    expect(await onDisk(images.a.layerDigest)).toBe(true);
    // The build ends (its record is forgotten): a is evictable again.
    h.db.prepare('DELETE FROM build_registry_record WHERE build_id = ?').run('b_inflight');
    pastGrace();
    await pull('d');
    await h.registry.evictMirror();
    expect(mirrored('a')).toBe(false);
    expect(await onDisk(images.a.layerDigest)).toBe(false);
  });

  it('never counts nor removes what an operator or a tenant pushed, even a shared layer', async () => {
    const admin = await h.apiToken('ops', ['registry:admin']);
    await seed(images.d, `docker://${h.host}/library/d:1`, `kiln:${admin}`);
    const push = await h.buildToken({ id: 'b_push', tenant: 'acme', repository: 'acme/app' });
    // The tenant pushes an image whose layer is the mirrored a's.
    await seed(images.a, `docker://${h.host}/acme/app:1`, `kiln:${push}`);
    await pull('a');
    pastGrace();
    await pull('b');
    pastGrace();
    await pull('c');
    const usage = h.registry.mirrorUsage().bytes;
    // a's layer is the tenant's too: only b's and c's count.
    expect(usage).toBeLessThan(MAX_BYTES);
    await h.registry.evictMirror();
    expect(mirrored('a') && mirrored('b') && mirrored('c')).toBe(true);
    // d is served from the operator's library/d: nothing fetched, nothing counted.
    await pull('d');
    expect(h.registry.mirrorUsage().bytes).toBe(usage);

    const metrics = new KilnMetrics();
    try {
      metrics.observeRegistryStorage(h.registry);
      const text = await metrics.render();
      const value = (series: string) => {
        const line = text.split('\n').find((l) => l.startsWith(`${series} `));
        return line === undefined ? undefined : Number(line.split(' ')[1]);
      };
      expect(value('kiln_registry_namespace_manifests{namespace="library"}')).toBe(1);
      expect(value('kiln_registry_namespace_manifests{namespace="tenant"}')).toBe(1);
      expect(value('kiln_registry_namespace_manifests{namespace="mirror"}')).toBe(3);
      expect(value('kiln_registry_namespace_blobs{namespace="mirror"}')).toBe(6);
      expect(value('kiln_registry_namespace_blobs{namespace="library"}')).toBe(2);
      expect(value('kiln_registry_namespace_blobs{namespace="tenant"}')).toBe(2);
      expect(value('kiln_registry_namespace_blob_bytes{namespace="cache"}')).toBe(0);
      expect(value('kiln_mirror_usage_bytes')).toBe(usage);
      expect(value('kiln_mirror_max_bytes')).toBe(MAX_BYTES);
    } finally {
      await metrics.close();
    }

    // e takes the mirror over the limit: a, the least recently used, is evicted first, but
    // its layers are the tenant's too and stay; b goes as well to make room.
    pastGrace();
    await pull('e');
    await h.registry.evictMirror();
    expect(mirrored('a')).toBe(false);
    expect(mirrored('b')).toBe(false);
    expect(mirrored('c') && mirrored('e')).toBe(true);
    for (const digest of [images.a.layerDigest, images.d.layerDigest, images.d.configDigest]) {
      expect(await onDisk(digest)).toBe(true);
    }
    expect(await onDisk(images.b.layerDigest)).toBe(false);
    const tenantLayer = await get(`acme/app/blobs/${images.a.layerDigest}`, push);
    expect(tenantLayer.status).toBe(200);
    await tenantLayer.arrayBuffer();
    expect(proxy.blobGets.get(images.d.layerDigest)).toBeUndefined();
  });
});
