import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { parseMirrorConfig } from '../../src/config/mirror-config.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { writeOciIndexLayout, type OciIndexLayout } from '../helpers/mirror-oci-index.js';
import { UpstreamProxy } from '../helpers/mirror-upstream-proxy.js';
import { RegistryHarness } from '../helpers/registry-harness.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { skopeoPull, skopeoSeed } from '../helpers/skopeo-pull.js';

/*
 * The mirror against real upstreams on loopback: Debian's Distribution with htpasswd Basic
 * auth (seeded with skopeo) behind a counting, byte-flipping proxy, and a second Kiln
 * registry with token auth. Pulls go through a Kiln registry whose upstreams point at them.
 */

let tmp: string;
let authFile: string;
let credentialsFile: string;
let dist: DistributionRegistry;
let kilnUp: RegistryHarness;
let busybox: OciLayout;
let big: OciLayout;
let tool: OciLayout;
let node: OciIndexLayout;
let proxy: UpstreamProxy;
let h: RegistryHarness;
let token: string;
/** A loopback port nothing listens on. */
let closedPort: number;

const TTL_SECONDS = 60;

async function layoutBlob(dir: string, digest: string): Promise<Buffer> {
  return readFile(path.join(dir, 'blobs', 'sha256', digest.replace(/^sha256:/, '')));
}

function seed(args: string[], dest: string, creds: string): Promise<void> {
  return skopeoSeed(authFile, creds, args, dest);
}

beforeAll(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'kiln-mirror-'));
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  closedPort = (probe.address() as AddressInfo).port;
  await new Promise<void>((resolve) =>
    probe.close(() => {
      resolve();
    }),
  );
  authFile = path.join(tmp, 'auth.json');
  await writeFile(authFile, '{}');
  busybox = await writeOciLayout(path.join(tmp, 'busybox'), {
    'bin/busybox': '#!/bin/sh\necho busybox\n',
  });
  big = await writeOciLayout(
    path.join(tmp, 'big'),
    { payload: randomBytes(8 * 1024 * 1024) },
    { uncompressed: true },
  );
  tool = await writeOciLayout(path.join(tmp, 'tool'), { tool: 'a tool\n' });
  node = await writeOciIndexLayout(path.join(tmp, 'node'), ['amd64', 'arm64']);

  dist = await startDistribution();
  const distCreds = `${dist.user}:${dist.password}`;
  await seed(
    [`oci:${busybox.dir}:latest`],
    `docker://${dist.host}/library/busybox:1.36`,
    distCreds,
  );
  await seed([`oci:${big.dir}:latest`], `docker://${dist.host}/library/big:1`, distCreds);
  await seed([`oci:${tool.dir}:latest`], `docker://${dist.host}/someorg/tool:1`, distCreds);
  await seed([`oci:${busybox.dir}:latest`], `docker://${dist.host}/someorg/shell:1`, distCreds);
  await seed(
    ['--all', `oci:${node.dir}:latest`],
    `docker://${dist.host}/library/node:22-slim`,
    distCreds,
  );

  kilnUp = await RegistryHarness.start();
  const push = await kilnUp.buildToken({ id: 'b_seed', tenant: 'org', repository: 'org/img' });
  await seed([`oci:${tool.dir}:latest`], `docker://${kilnUp.host}/org/img:1`, `kiln:${push}`);
  const pull = await kilnUp.apiToken('org', ['registry:pull']);

  credentialsFile = path.join(tmp, 'mirror-auth.json');
  const basic = (user: string, password: string) =>
    Buffer.from(`${user}:${password}`).toString('base64');
  await writeFile(
    credentialsFile,
    JSON.stringify({
      auths: {
        'docker.io': { auth: basic(dist.user, dist.password) },
        'badcreds.test': { auth: basic(dist.user, 'wrong') },
        'kiln.test': { username: 'kiln', password: pull },
      },
    }),
  );
}, 120_000);

afterAll(async () => {
  await kilnUp.close();
  await dist.close();
  await rm(tmp, { recursive: true, force: true });
});

beforeEach(async () => {
  proxy = await UpstreamProxy.start(dist.url);
  const mirror = parseMirrorConfig({
    KILN_MIRROR_UPSTREAMS: [
      `docker.io=${proxy.url}`,
      `nocreds.test=${dist.url}`,
      `badcreds.test=${dist.url}`,
      `kiln.test=${kilnUp.url}`,
      `kilnanon.test=${kilnUp.url}`,
      `down.test=http://127.0.0.1:${closedPort}`,
    ].join(','),
    KILN_MIRROR_INSECURE_UPSTREAMS:
      'docker.io,nocreds.test,badcreds.test,kiln.test,kilnanon.test,down.test',
    KILN_MIRROR_CREDENTIALS_FILE: credentialsFile,
    KILN_MIRROR_TAG_TTL_SECONDS: String(TTL_SECONDS),
    KILN_MIRROR_UPSTREAM_TIMEOUT_SECONDS: '5',
  });
  h = await RegistryHarness.start({ mirror });
  token = await h.buildToken({ id: 'b_mirror', tenant: 'acme', repository: 'acme/app' });
});

afterEach(async () => {
  await h.close();
  await proxy.stop();
});

function pull(ref: string, dest: string, extra: string[] = []) {
  return skopeoPull(authFile, token, `docker://${h.host}/${ref}`, dest, extra);
}

function get(pathname: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${h.url}/v2/${pathname}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
}

async function errorOf(res: Response): Promise<{ code: string; message: string; detail: unknown }> {
  const body = (await res.json()) as {
    errors: { code: string; message: string; detail: unknown }[];
  };
  const first = body.errors[0];
  if (first === undefined) throw new Error('no error in the body');
  return first;
}

function storedBlobPath(digest: string): string {
  const hex = digest.replace(/^sha256:/, '');
  return path.join(h.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
}

describe('the pull-through mirror', () => {
  it('pulls an image by tag and by digest with skopeo, byte-identical to the upstream', async () => {
    const byTag = path.join(tmp, `tag-${Date.now()}`);
    const run = await pull('mirror/docker.io/library/busybox:1.36', byTag);
    expect(run.stderr).toBe('');
    expect(run.ok).toBe(true);
    expect(await readFile(path.join(byTag, 'manifest.json'))).toEqual(
      await layoutBlob(busybox.dir, busybox.manifestDigest),
    );
    const hex = (d: string) => d.replace(/^sha256:/, '');
    expect(await readFile(path.join(byTag, hex(busybox.layerDigest)))).toEqual(
      await layoutBlob(busybox.dir, busybox.layerDigest),
    );

    const byDigest = path.join(tmp, `digest-${Date.now()}`);
    const again = await pull(`mirror/docker.io/someorg/tool@${tool.manifestDigest}`, byDigest);
    expect(again.ok).toBe(true);
    expect(await readFile(path.join(byDigest, 'manifest.json'))).toEqual(
      await layoutBlob(tool.dir, tool.manifestDigest),
    );
    expect(await readFile(path.join(byDigest, hex(tool.configDigest)))).toEqual(
      await layoutBlob(tool.dir, tool.configDigest),
    );
  });

  it('pulls through a second Kiln registry that uses token auth', async () => {
    const dest = path.join(tmp, `kiln-${Date.now()}`);
    const run = await pull('mirror/kiln.test/org/img:1', dest);
    expect(run.stderr).toBe('');
    expect(await readFile(path.join(dest, 'manifest.json'))).toEqual(
      await layoutBlob(tool.dir, tool.manifestDigest),
    );
  });

  it('keeps a multi-platform index whole and serves the platform manifest a client picks', async () => {
    const all = path.join(tmp, `all-${Date.now()}`);
    const run = await pull('mirror/docker.io/library/node:22-slim', all, ['--all']);
    expect(run.ok).toBe(true);
    expect(await readFile(path.join(all, 'manifest.json'))).toEqual(
      await layoutBlob(node.dir, node.indexDigest),
    );

    const head = await get('mirror/docker.io/library/node/manifests/22-slim', {
      accept: 'application/vnd.oci.image.index.v1+json',
    });
    expect(head.status).toBe(200);
    expect(head.headers.get('docker-content-digest')).toBe(node.indexDigest);
    expect(head.headers.get('content-type')).toBe('application/vnd.oci.image.index.v1+json');

    const arm = path.join(tmp, `arm-${Date.now()}`);
    const one = await pull('mirror/docker.io/library/node:22-slim', arm, [
      '--override-arch',
      'arm64',
      '--override-os',
      'linux',
    ]);
    expect(one.ok).toBe(true);
    const arm64 = node.platforms.arm64!;
    expect(await readFile(path.join(arm, 'manifest.json'))).toEqual(
      await layoutBlob(node.dir, arm64.manifestDigest),
    );
  });

  it('serves stored digests and the last tag resolution after the upstream went away', async () => {
    const first = await get('mirror/docker.io/library/busybox/manifests/1.36');
    expect(first.status).toBe(200);
    const digest = first.headers.get('docker-content-digest');
    expect(digest).toBe(busybox.manifestDigest);
    const layer = await get(`mirror/docker.io/library/busybox/blobs/${busybox.layerDigest}`);
    expect(Buffer.from(await layer.arrayBuffer())).toEqual(
      await layoutBlob(busybox.dir, busybox.layerDigest),
    );

    await proxy.stop();
    const byDigest = await get(
      `mirror/docker.io/library/busybox/manifests/${busybox.manifestDigest}`,
    );
    expect(byDigest.status).toBe(200);
    const again = await get(`mirror/docker.io/library/busybox/blobs/${busybox.layerDigest}`);
    expect(Buffer.from(await again.arrayBuffer())).toEqual(
      await layoutBlob(busybox.dir, busybox.layerDigest),
    );
    // Within the TTL the tag is answered from the store; past it the upstream is asked, and
    // when it cannot be reached the last resolution is served.
    expect((await get('mirror/docker.io/library/busybox/manifests/1.36')).status).toBe(200);
    h.clock.advance((TTL_SECONDS + 1) * 1000);
    const stale = await get('mirror/docker.io/library/busybox/manifests/1.36');
    expect(stale.status).toBe(200);
    expect(stale.headers.get('docker-content-digest')).toBe(busybox.manifestDigest);

    const never = await get('mirror/docker.io/library/big/manifests/1');
    expect(never.status).toBe(502);
    const error = await errorOf(never);
    expect(error.message).toMatch(/upstream docker\.io is unreachable .*library\/big:1/);
    expect(error.detail).toMatchObject({ cause: 'unreachable', upstream: 'docker.io' });
  });

  it('refuses a blob whose bytes do not match its digest, aborts the response and stores nothing', async () => {
    proxy.corrupt.add(big.layerDigest);
    const res = await get(`mirror/docker.io/library/big/blobs/${big.layerDigest}`);
    expect(res.status).toBe(200);
    await expect(res.arrayBuffer()).rejects.toThrow();
    // A Range request waits for its download to be verified: it is refused as well.
    const refused = await get(`mirror/docker.io/library/big/blobs/${big.layerDigest}`, {
      range: 'bytes=0-15',
    });
    expect(refused.status).toBe(502);
    expect((await errorOf(refused)).message).toMatch(
      /whose digest is sha256:[a-f0-9]{64}; it was refused/,
    );
    await expect(stat(storedBlobPath(big.layerDigest))).rejects.toThrow();
    expect(await readdir(path.join(h.dataDir, 'registry', 'mirror-downloads'))).toEqual([]);

    // The retry may have joined the refused download or started its own; either way nothing
    // was stored, so the next request downloads again.
    const before = proxy.blobGets.get(big.layerDigest) ?? 0;
    proxy.corrupt.clear();
    const good = await get(`mirror/docker.io/library/big/blobs/${big.layerDigest}`);
    // Compared with equals(): a deep toEqual over 8 MiB takes minutes.
    const body = Buffer.from(await good.arrayBuffer());
    expect(body.equals(await layoutBlob(big.dir, big.layerDigest))).toBe(true);
    // Readers get their last byte once the digest is verified; the fsync and rename that
    // store the blob follow, so it is on disk shortly after (not before) the response ends.
    const size = (await stat(path.join(big.dir, 'blobs', 'sha256', big.layerDigest.slice(7)))).size;
    await vi.waitFor(async () => {
      expect((await stat(storedBlobPath(big.layerDigest))).size).toBe(size);
    });
    expect(proxy.blobGets.get(big.layerDigest)).toBe(before + 1);
  });

  it('follows a blob redirect to another origin without the upstream credentials', async () => {
    const seen: (string | undefined)[] = [];
    const cdn = createHttpServer((req, res) => {
      seen.push(req.headers.authorization);
      const digest = (req.url ?? '').slice(1);
      layoutBlob(big.dir, digest).then(
        (bytes) => {
          res.writeHead(200, { 'content-length': String(bytes.length) });
          res.end(bytes);
        },
        () => {
          res.writeHead(404);
          res.end();
        },
      );
    });
    await new Promise<void>((resolve) => cdn.listen(0, '127.0.0.1', resolve));
    try {
      proxy.redirectBlobs = `http://127.0.0.1:${(cdn.address() as AddressInfo).port}`;
      // The manifest's blobs (config and layer) are prefetched through the redirect; the
      // client's GET of the layer joins that download.
      const manifest = await get('mirror/docker.io/library/big/manifests/1');
      expect(manifest.status).toBe(200);
      await manifest.arrayBuffer();
      const res = await get(`mirror/docker.io/library/big/blobs/${big.layerDigest}`);
      expect(res.status).toBe(200);
      const body = Buffer.from(await res.arrayBuffer());
      expect(body.equals(await layoutBlob(big.dir, big.layerDigest))).toBe(true);
      await expect.poll(() => seen.length).toBe(2);
      // The upstream was sent the credentials; the other origin was not.
      expect(proxy.blobAuthorization).toEqual([
        expect.stringMatching(/^Basic /),
        expect.stringMatching(/^Basic /),
      ]);
      expect(seen).toEqual([undefined, undefined]);
    } finally {
      proxy.redirectBlobs = null;
      await new Promise<void>((resolve) =>
        cdn.close(() => {
          resolve();
        }),
      );
    }
  });

  it('fetches a blob from the upstream once however many clients ask for it at once', async () => {
    const expected = await layoutBlob(big.dir, big.layerDigest);
    const bodies = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const res = await get(`mirror/docker.io/library/big/blobs/${big.layerDigest}`);
        expect(res.status).toBe(200);
        return Buffer.from(await res.arrayBuffer());
      }),
    );
    for (const body of bodies) expect(body.equals(expected)).toBe(true);
    expect(proxy.blobGets.get(big.layerDigest)).toBe(1);
  });

  it('links a layer another mirrored repository holds instead of downloading it again', async () => {
    const expected = await layoutBlob(busybox.dir, busybox.layerDigest);
    for (const repo of ['library/busybox', 'someorg/shell']) {
      const res = await get(`mirror/docker.io/${repo}/blobs/${busybox.layerDigest}`);
      expect(Buffer.from(await res.arrayBuffer()).equals(expected)).toBe(true);
      // A client has the whole verified blob before the mirror has made it durable and
      // recorded it; the next repository finds it once that is done.
      await expect
        .poll(() =>
          stat(storedBlobPath(busybox.layerDigest)).then(
            () => true,
            () => false,
          ),
        )
        .toBe(true);
      await expect
        .poll(
          () =>
            h.db
              .prepare('SELECT 1 FROM registry_blobs WHERE digest = ?')
              .get(busybox.layerDigest) !== undefined,
        )
        .toBe(true);
    }
    expect(proxy.blobGets.get(busybox.layerDigest)).toBe(1);
    // A tenant's repository is not a source: its blobs may be private.
    const push = await h.buildToken({ id: 'b_own', tenant: 'acme', repository: 'acme/own' });
    const up = await fetch(`${h.url}/v2/acme/own/blobs/uploads/?digest=${tool.layerDigest}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${push}`, 'content-type': 'application/octet-stream' },
      body: await layoutBlob(tool.dir, tool.layerDigest),
    });
    expect(up.status).toBe(201);
    const res = await get(`mirror/docker.io/someorg/tool/blobs/${tool.layerDigest}`);
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(proxy.blobGets.get(tool.layerDigest)).toBe(1);
  });

  it('serves an operator-seeded library/ image before the Docker Hub upstream', async () => {
    const admin = await h.apiToken('ops', ['registry:admin']);
    await seed(
      [`oci:${tool.dir}:latest`],
      `docker://${h.host}/library/busybox:1.36`,
      `kiln:${admin}`,
    );
    const res = await get('mirror/docker.io/library/busybox/manifests/1.36');
    expect(res.status).toBe(200);
    expect(res.headers.get('docker-content-digest')).toBe(tool.manifestDigest);
    const layer = await get(`mirror/docker.io/library/busybox/blobs/${tool.layerDigest}`);
    expect(layer.status).toBe(200);
    expect(proxy.blobGets.size).toBe(0);
  });

  it('names the cause when the upstream does not have the image, is unreachable or refuses', async () => {
    const missing = await get('mirror/docker.io/library/nope/manifests/1');
    expect(missing.status).toBe(404);
    expect(await errorOf(missing)).toMatchObject({
      code: 'MANIFEST_UNKNOWN',
      message: 'upstream docker.io does not have it: library/nope:1',
      detail: { cause: 'not_found' },
    });

    const started = Date.now();
    const down = await get('mirror/down.test/library/busybox/manifests/1.36');
    expect(down.status).toBe(502);
    expect((await errorOf(down)).message).toMatch(
      /^upstream down\.test is unreachable \(ECONNREFUSED\)/,
    );
    expect(Date.now() - started).toBeLessThan(5000);

    const nocreds = await get('mirror/nocreds.test/library/busybox/manifests/1.36');
    expect(nocreds.status).toBe(403);
    expect(await errorOf(nocreds)).toMatchObject({
      code: 'DENIED',
      message:
        'upstream nocreds.test requires credentials for library/busybox:1.36 and none are configured',
      detail: { cause: 'unauthorized' },
    });

    const bad = await get('mirror/badcreds.test/library/busybox/manifests/1.36');
    expect(bad.status).toBe(403);
    expect((await errorOf(bad)).message).toBe(
      'upstream badcreds.test refused the configured credentials: library/busybox:1.36',
    );

    const anon = await get('mirror/kilnanon.test/org/img/manifests/1');
    expect(anon.status).toBe(403);
    expect((await errorOf(anon)).message).toBe(
      'upstream kilnanon.test gives no anonymous access to org/img:1',
    );

    const unknown = await get('mirror/elsewhere.test/a/b/manifests/1');
    expect(unknown.status).toBe(404);
    expect(await errorOf(unknown)).toMatchObject({
      code: 'NAME_UNKNOWN',
      detail: { cause: 'not_configured' },
    });
  });

  it('lets API tokens with registry:pull pull, and nobody push into the mirror', async () => {
    const reader = await h.apiToken('acme', ['registry:pull']);
    const res = await fetch(`${h.url}/v2/mirror/docker.io/library/busybox/manifests/1.36`, {
      headers: { authorization: RegistryHarness.basic(reader) },
    });
    expect(res.status).toBe(200);

    const admin = await h.apiToken('ops', ['registry:admin']);
    const push = await fetch(`${h.url}/v2/mirror/docker.io/library/busybox/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization: RegistryHarness.basic(admin) },
    });
    expect(push.status).toBe(401);
    expect((await errorOf(push)).code).toBe('UNAUTHORIZED');
  });
});

describe('the pull-through mirror, more ways in', () => {
  it('keeps downloading when the first client goes away, and streams through web streams too', async () => {
    const mirror = parseMirrorConfig({
      KILN_MIRROR_UPSTREAMS: `docker.io=${proxy.url}`,
      KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io',
      KILN_MIRROR_CREDENTIALS_FILE: credentialsFile,
    });
    const web = await RegistryHarness.start({ mirror, webStreams: true });
    try {
      const build = await web.buildToken({ id: 'b_web', tenant: 'acme', repository: 'acme/app' });
      const url = `${web.url}/v2/mirror/docker.io/library/big/blobs/${big.layerDigest}`;
      const headers = { authorization: `Bearer ${build}` };
      const first = await fetch(url, { headers });
      expect(first.status).toBe(200);
      await first.body?.cancel();
      const second = await fetch(url, { headers });
      const body = Buffer.from(await second.arrayBuffer());
      expect(body.equals(await layoutBlob(big.dir, big.layerDigest))).toBe(true);
      expect(proxy.blobGets.get(big.layerDigest)).toBe(1);
    } finally {
      await web.close();
    }
  });

  it('gives up on an upstream that accepts but never answers after the configured timeout', async () => {
    // An HTTP server that takes each request and never answers it.
    const silent = createHttpServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const mirror = parseMirrorConfig({
      KILN_MIRROR_UPSTREAMS: `silent.test=http://127.0.0.1:${port}`,
      KILN_MIRROR_INSECURE_UPSTREAMS: 'silent.test',
      KILN_MIRROR_UPSTREAM_TIMEOUT_SECONDS: '1',
    });
    const quiet = await RegistryHarness.start({ mirror });
    try {
      const build = await quiet.buildToken({
        id: 'b_quiet',
        tenant: 'acme',
        repository: 'acme/app',
      });
      const res = await fetch(`${quiet.url}/v2/mirror/silent.test/library/x/manifests/1`, {
        headers: { authorization: `Bearer ${build}` },
      });
      expect(res.status).toBe(502);
      expect((await errorOf(res)).message).toBe(
        'upstream silent.test did not answer within 1 s: library/x:1',
      );
    } finally {
      await quiet.close();
      silent.closeAllConnections();
      await new Promise<void>((resolve) =>
        silent.close(() => {
          resolve();
        }),
      );
    }
  });
});
