import { randomBytes } from 'node:crypto';
import { access, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eClient } from '../helpers/e2e-client.js';
import { disposeE2eDaemon, startE2eDaemon, type E2eDaemon } from '../helpers/e2e-daemon.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';
import { writeSourceTarball } from '../helpers/e2e-source.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { UpstreamProxy } from '../helpers/mirror-upstream-proxy.js';
import { runClient } from '../helpers/registry-clients.js';
import { writeOciLayout, type OciLayout } from '../helpers/registry-oci-layout.js';
import { TEST_NODE_IMAGE_TAG, testNodeImageLayout } from '../helpers/test-node-image.js';

/**
 * End to end through the pull-through mirror: two real upstreams on loopback (Distribution
 * with Basic auth, each seeded with the tests' `node:22-slim` stand-in as a multi-platform
 * index), the daemon naming them `docker.io` and `registry.test`, and Buildah in a real QEMU
 * microVM resolving every `FROM` form through Kiln. Nothing is seeded into `library/`, so
 * every base image comes through the mirror. A third name, `corrupt.test`, reaches the second
 * upstream through a test proxy that flips a byte of chosen blobs (the test double of a bad
 * upstream). Four VMs in all (2-core machines).
 */
const BUILD_TIMEOUT_MS = 300_000;

describe('base images through the mirror, in QEMU microVMs', () => {
  let hub: DistributionRegistry;
  let other: DistributionRegistry;
  /** Every upstream (and proxy) started, to stop in afterAll whatever failed. */
  const started: { close: () => Promise<void> }[] = [];
  let daemon: E2eDaemon;
  let client: E2eClient;
  let pullToken: string;
  let work: string;
  let indexDigest: string;
  let corrupting: UpstreamProxy;
  let badImage: OciLayout;
  let sources = 0;

  async function seed(layout: string, upstream: DistributionRegistry, repo: string, tag?: string) {
    const run = await runClient('skopeo', [
      'copy',
      '--all',
      '--preserve-digests',
      '--authfile',
      path.join(work, 'empty-auth.json'),
      '--dest-tls-verify=false',
      '--dest-creds',
      `${upstream.user}:${upstream.password}`,
      `oci:${layout}:${tag ?? TEST_NODE_IMAGE_TAG}`,
      `docker://${upstream.host}/${repo}`,
    ]);
    if (!run.ok) throw new Error(`seeding ${repo} failed: ${run.stderr}`);
  }

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-mirror-'));
    await writeFile(path.join(work, 'empty-auth.json'), '{"auths":{}}');
    const layout = await testNodeImageLayout();
    const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const tagged = index.manifests.find(
      (m) => m.annotations?.['org.opencontainers.image.ref.name'] === TEST_NODE_IMAGE_TAG,
    );
    if (tagged === undefined) throw new Error('the node image layout has no 22-slim');
    indexDigest = tagged.digest;
    hub = await startDistribution('hub', 'hub-secret');
    started.push(hub);
    other = await startDistribution('other', 'other-secret');
    started.push(other);
    await seed(layout, hub, 'library/node:22-slim');
    await seed(layout, hub, 'someorg/tool:1');
    await seed(layout, other, 'org/img:1');
    // An image of its own (fresh random bytes), so none of its blobs is in the mirror yet.
    badImage = await writeOciLayout(
      path.join(work, 'bad-image'),
      { payload: randomBytes(256 * 1024) },
      { ref: 'latest' },
    );
    await seed(badImage.dir, other, 'org/bad:1', 'latest');
    corrupting = await UpstreamProxy.start(other.url);
    started.push({ close: () => corrupting.stop() });
    corrupting.corrupt.add(badImage.layerDigest);
    const basic = (r: DistributionRegistry) =>
      Buffer.from(`${r.user}:${r.password}`).toString('base64');
    const credentials = path.join(work, 'upstream-auth.json');
    await writeFile(
      credentials,
      JSON.stringify({
        auths: {
          'docker.io': { auth: basic(hub) },
          'registry.test': { auth: basic(other) },
          'corrupt.test': { auth: basic(other) },
        },
      }),
    );
    daemon = await startE2eDaemon({
      env: {
        KILN_MAX_CONCURRENT_BUILDS: '1',
        KILN_DEFAULT_MEMORY_MB: '1024',
        KILN_DEFAULT_CPUS: '1',
        KILN_SCRATCH_BYTES: '8G',
        KILN_BOOT_TIMEOUT_SECONDS: '180',
        // The upstream names builds use, mapped to the loopback registries for the test.
        KILN_MIRROR_UPSTREAMS: `docker.io=${hub.url},registry.test=${other.url},corrupt.test=${corrupting.url}`,
        KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io,registry.test,corrupt.test',
        KILN_MIRROR_CREDENTIALS_FILE: credentials,
      },
    });
    client = new E2eClient(daemon, await daemon.token('acme', ['builds:write', 'builds:read']));
    pullToken = await daemon.token('acme', ['registry:pull']);
  }, 900_000);

  afterAll(async () => {
    await disposeE2eDaemon(daemon);
    for (const upstream of started) await upstream.close();
    await rm(work, { recursive: true, force: true });
  });

  async function source(dockerfile: string[]): Promise<string> {
    sources += 1;
    const file = path.join(work, `src-${sources}.tar.gz`);
    return (await writeSourceTarball(file, { Dockerfile: [...dockerfile, ''].join('\n') })).path;
  }

  /** Submits `src`; the build once building, at its end, and the seconds between the two. */
  async function untilEnd(src: string) {
    const submitted = await client.submit(src);
    const building = await client.waitFor(submitted.id, (b) => b.status === 'building');
    const started = Date.now();
    const build = await client.waitFor(submitted.id);
    return { building, build, seconds: (Date.now() - started) / 1000 };
  }

  it(
    'resolves the short form, docker.io/library by digest, another Hub namespace and a second upstream',
    async () => {
      const src = await source([
        `FROM docker.io/library/node@${indexDigest} AS full`,
        'FROM someorg/tool:1 AS hub_org',
        'FROM registry.test/org/img:1 AS second',
        'FROM node:22-slim',
        'COPY --from=full /etc/debian_version /from/full',
        'COPY --from=hub_org /etc/debian_version /from/hub_org',
        'COPY --from=second /etc/debian_version /from/second',
        'RUN node -e "process.stdout.write(process.version)" > /from/node-version',
      ]);
      const build = await client.waitFor((await client.submit(src)).id);
      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const image = await pullImage(
        `${daemon.registry}/${build.repository}:${build.id}`,
        pullToken,
      );
      expect(imageFile(image, 'from/node-version')).toMatch(/^v22\./);
      for (const stage of ['full', 'hub_org', 'second']) {
        expect(imageFile(image, `from/${stage}`)).toMatch(/^12\./);
      }
      // Every form landed in its mirrored repository.
      for (const repo of [
        'mirror/docker.io/library/node:22-slim',
        'mirror/docker.io/someorg/tool:1',
        'mirror/registry.test/org/img:1',
      ]) {
        const run = await runClient('skopeo', [
          'inspect',
          '--raw',
          '--tls-verify=false',
          '--creds',
          `acme:${pullToken}`,
          `docker://${daemon.registry}/${repo}`,
        ]);
        expect(run.ok, run.stderr).toBe(true);
      }
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'ends a build FROM an image the upstream does not have base_image_unavailable within seconds',
    async () => {
      const src = await source(['FROM docker.io/library/no-such-image:1', 'RUN true']);
      const { building, build, seconds } = await untilEnd(src);
      expect(building.status).toBe('building');
      expect(build.status).toBe('failed');
      expect(build.error?.code).toBe('base_image_unavailable');
      expect(build.error?.message).toMatch(/docker\.io\/library\/no-such-image:1/);
      expect(build.error?.message).toMatch(/not found/);
      // From the building phase (before the FROM step) to the end, VM teardown included.
      expect(seconds).toBeLessThan(10);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'ends a build FROM an image whose layer the upstream serves corrupted base_image_unavailable, storing none of it',
    async () => {
      const src = await source(['FROM corrupt.test/org/bad:1', 'COPY Dockerfile /Dockerfile']);
      const { building, build, seconds } = await untilEnd(src);
      expect(building.status).toBe('building');
      expect(build.status).toBe('failed');
      expect(build.error?.code).toBe('base_image_unavailable');
      expect(build.error?.message).toContain('corrupt.test');
      expect(build.error?.message).toContain(badImage.layerDigest);
      expect(build.error?.message).toMatch(/refused and not stored/);
      // The proxy really served the corrupted layer (at least once: the engine may retry).
      expect(corrupting.blobGets.get(badImage.layerDigest) ?? 0).toBeGreaterThan(0);
      expect(seconds).toBeLessThan(30);
      // Nothing of the corrupted layer is in the registry's blob store.
      const hex = badImage.layerDigest.slice('sha256:'.length);
      const blob = path.join(daemon.dataDir, 'registry', 'blobs', 'sha256', hex.slice(0, 2), hex);
      await expect(access(blob)).rejects.toMatchObject({ code: 'ENOENT' });
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'rebuilds FROM the same digest from the mirror once the upstreams are gone',
    async () => {
      await hub.close();
      await other.close();
      const src = await source([
        `FROM docker.io/library/node@${indexDigest}`,
        'RUN node -e "process.stdout.write(\'offline\')" > /offline.txt',
      ]);
      const build = await client.waitFor((await client.submit(src)).id);
      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const image = await pullImage(
        `${daemon.registry}/${build.repository}:${build.id}`,
        pullToken,
      );
      expect(imageFile(image, 'offline.txt')).toBe('offline');
    },
    BUILD_TIMEOUT_MS,
  );
});
