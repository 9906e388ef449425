import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2eClient } from '../helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../helpers/e2e-daemon.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';
import { writeSourceTarball } from '../helpers/e2e-source.js';
import { findQemuProcesses } from '../helpers/e2e-vm-processes.js';

/**
 * End to end: the real daemon over HTTP, real QEMU microVMs with the real guest
 * image, the real registry, skopeo as the client. One daemon and one seeded registry for the
 * whole file; builds run one at a time (2-core machines).
 */
const BUILD_TIMEOUT_MS = 240_000;

describe('builds in QEMU microVMs, end to end', () => {
  let daemon: E2eDaemon;
  let client: E2eClient;
  let pullToken: string;
  let work: string;
  let sourceCount = 0;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-src-'));
    daemon = await startE2eDaemon({
      env: {
        KILN_MAX_CONCURRENT_BUILDS: '1',
        KILN_DEFAULT_MEMORY_MB: '1024',
        KILN_DEFAULT_CPUS: '1',
        KILN_SCRATCH_BYTES: '8G',
        // Shared 2-core CI machines: TCG boots take 12–25 s under load; leave headroom.
        KILN_BOOT_TIMEOUT_SECONDS: '120',
      },
    });
    const admin = await daemon.token('operator', ['registry:admin']);
    await seedBaseImage(daemon, admin);
    client = new E2eClient(
      daemon,
      await daemon.token('acme', ['builds:write', 'builds:read', 'secrets:write']),
    );
    pullToken = await daemon.token('acme', ['registry:pull']);
  }, 240_000);

  afterAll(async () => {
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  });

  async function source(files: Record<string, string>): Promise<string> {
    sourceCount += 1;
    return (await writeSourceTarball(path.join(work, `src-${sourceCount}.tar.gz`), files)).path;
  }

  async function expectNoVmLeft(buildId: string): Promise<void> {
    expect(await findQemuProcesses(buildId)).toEqual([]);
    expect(await readdir(path.join(daemon.dataDir, 'vms')).catch(() => [])).toEqual([]);
  }

  it(
    'builds FROM the seeded busybox with COPY, RUN, ENV and CMD; skopeo pulls back the files, config and reported digest',
    async () => {
      const src = await source({
        Dockerfile: [
          'FROM busybox',
          'COPY hello.txt /app/hello.txt',
          'RUN echo "built-in-vm" > /app/built.txt && ls /app',
          'ENV GREETING=hello-kiln',
          'CMD ["cat", "/app/hello.txt"]',
          '',
        ].join('\n'),
        'hello.txt': 'hello from the source tarball\n',
      });
      const submitted = await client.submit(src, { image_name: 'web' });
      const build = await client.waitFor(submitted.id);

      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      expect(build.result?.image_ref).toContain(`acme/web:${build.id}`);
      // Every second from the upload to ready is accounted for: the host's phases, and the
      // guest's inside the window the host observed; none negative, the sum the total.
      const { timings } = build;
      expect(Object.keys(timings.phases)).toEqual(
        expect.arrayContaining([
          'upload',
          'queued',
          'token',
          'prepare',
          'vm_start',
          'boot',
          'extracting',
          'engine_start',
          'building',
          'pushing',
          'agent_other',
          'teardown',
        ]),
      );
      expect(Object.values(timings.phases).every((s) => s >= 0)).toBe(true);
      const sum = Object.values(timings.phases).reduce((a, b) => a + b, 0);
      expect(timings.total_seconds).not.toBeNull();
      expect(Math.abs(sum - timings.total_seconds!)).toBeLessThan(0.05);
      expect(Math.abs(timings.unaccounted_seconds)).toBeLessThan(0.05);
      expect(timings.phases.boot).toBeGreaterThan(0);
      expect(timings.phases.building).toBeGreaterThan(0);
      expect(timings.guest_reported).toEqual(expect.arrayContaining(['extracting', 'building']));
      // The host's own view of the agent window covers the same seconds.
      const agentWindow = [...timings.guest_reported, 'agent_other'].reduce(
        (a, p) => a + (timings.phases[p] ?? 0),
        0,
      );
      const observed = Object.values(timings.host_observed).reduce((a, b) => a + b, 0);
      expect(Math.abs(observed - agentWindow)).toBeLessThan(0.05);
      const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
      expect(metrics).toMatch(/^kiln_build_phase_seconds_count\{phase="building"\} [1-9]/m);
      expect(metrics).toMatch(/^kiln_build_phase_seconds_bucket\{phase="boot",le="\+Inf"\} [1-9]/m);
      const image = await pullImage(`${daemon.registry}/acme/web:${build.id}`, pullToken);
      expect(image.digest).toBe(build.result?.image_digest);
      expect(imageFile(image, 'app/hello.txt')).toBe('hello from the source tarball\n');
      expect(imageFile(image, 'app/built.txt')).toBe('built-in-vm\n');
      expect(imageFile(image, 'bin/busybox')).toBeDefined();
      expect(image.config.config?.Env).toContain('GREETING=hello-kiln');
      expect(image.config.config?.Cmd).toEqual(['cat', '/app/hello.txt']);
      const latest = await pullImage(`${daemon.registry}/acme/web:latest`, pullToken);
      expect(latest.digest).toBe(build.result?.image_digest);
      await expectNoVmLeft(build.id);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'builds a multi-stage Dockerfile with build_args: only the final stage ships, the arg is applied',
    async () => {
      const src = await source({
        Dockerfile: [
          'FROM busybox AS builder',
          'ARG VERSION',
          'RUN mkdir /out && echo "version=$VERSION" > /out/version.txt && echo scratch > /builder-only.txt',
          'FROM busybox',
          'COPY --from=builder /out/version.txt /version.txt',
          '',
        ].join('\n'),
      });
      const submitted = await client.submit(src, {
        build_args: JSON.stringify({ VERSION: '1.2.3' }),
      });
      const build = await client.waitFor(submitted.id);

      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const image = await pullImage(
        `${daemon.registry}/${build.repository}:${build.id}`,
        pullToken,
      );
      expect(imageFile(image, 'version.txt')).toBe('version=1.2.3\n');
      expect(imageFile(image, 'builder-only.txt')).toBeUndefined();
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'hands a secret to RUN --mount=type=secret without it reaching any layer or the config',
    async () => {
      const secret = `kiln-e2e-secret-${Date.now()}`;
      await client.putSecret('npm_token', secret);
      const src = await source({
        Dockerfile: [
          'FROM busybox',
          'RUN --mount=type=secret,id=npm_token sha256sum /run/secrets/npm_token | cut -d" " -f1 > /secret.sha256',
          '',
        ].join('\n'),
      });
      const submitted = await client.submit(src, { secrets: JSON.stringify(['npm_token']) });
      const build = await client.waitFor(submitted.id);

      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const image = await pullImage(
        `${daemon.registry}/${build.repository}:${build.id}`,
        pullToken,
      );
      const { createHash } = await import('node:crypto');
      expect(imageFile(image, 'secret.sha256')?.trim()).toBe(
        createHash('sha256').update(secret).digest('hex'),
      );
      for (const layer of image.layerBytes) expect(layer.includes(secret)).toBe(false);
      expect(JSON.stringify(image.config)).not.toContain(secret);
      expect(await client.logs(build.id)).not.toContain(secret);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'reuses cached layers on a second build of the same source with the same cache_scope',
    async () => {
      const src = await source({
        Dockerfile: ['FROM busybox', 'RUN cat /proc/sys/kernel/random/uuid > /stamp.txt', ''].join(
          '\n',
        ),
      });
      const first = await client.waitFor((await client.submit(src, { cache_scope: 'e2e' })).id);
      expect(first.status, JSON.stringify(first.error)).toBe('ready');
      const second = await client.waitFor((await client.submit(src, { cache_scope: 'e2e' })).id);
      expect(second.status, JSON.stringify(second.error)).toBe('ready');

      const a = await pullImage(`${daemon.registry}/${first.repository}:${first.id}`, pullToken);
      const b = await pullImage(`${daemon.registry}/${second.repository}:${second.id}`, pullToken);
      // The RUN layer writes a fresh random uuid: the same stamp means the layer came from cache.
      expect(imageFile(b, 'stamp.txt')).toBe(imageFile(a, 'stamp.txt'));
      expect(await client.logs(second.id)).toMatch(/using cache/i);
    },
    2 * BUILD_TIMEOUT_MS,
  );

  it(
    'ends a failing RUN as failed with build_failed and the last log lines',
    async () => {
      const src = await source({
        Dockerfile: ['FROM busybox', 'RUN echo "about to fail: $((40+2))" && exit 3', ''].join(
          '\n',
        ),
      });
      const build = await client.waitFor((await client.submit(src)).id);

      expect(build.status).toBe('failed');
      expect(build.error?.code).toBe('build_failed');
      expect(build.error?.log_tail.join('\n')).toContain('about to fail: 42');
      await expectNoVmLeft(build.id);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'ends a build over its timeout as failed with timeout, its VM gone',
    async () => {
      const src = await source({ Dockerfile: ['FROM busybox', 'RUN sleep 600', ''].join('\n') });
      const build = await client.waitFor((await client.submit(src, { timeout_seconds: '30' })).id);

      expect(build.status).toBe('failed');
      expect(build.error?.code).toBe('timeout');
      await expectNoVmLeft(build.id);
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'cancels a build mid-build: cancelled, and no QEMU process remains',
    async () => {
      const src = await source({ Dockerfile: ['FROM busybox', 'RUN sleep 600', ''].join('\n') });
      const submitted = await client.submit(src);
      const building = await client.waitFor(submitted.id, (b) => b.status === 'building');
      expect(building.status).toBe('building');
      expect(await findQemuProcesses(submitted.id)).toHaveLength(1);

      const asked = Date.now();
      expect(await client.cancel(submitted.id)).toBeLessThan(300);
      while ((await findQemuProcesses(submitted.id)).length > 0 && Date.now() - asked < 10_000) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const vmGoneSeconds = (Date.now() - asked) / 1000;
      const build = await client.waitFor(submitted.id);

      expect(build.status).toBe('cancelled');
      expect(vmGoneSeconds).toBeLessThan(2);
      await expectNoVmLeft(build.id);
    },
    BUILD_TIMEOUT_MS,
  );

  const probe = [
    'FROM busybox',
    'ARG PORT',
    // The host (10.0.2.2 in QEMU user networking) runs the daemon on PORT: reachable in no
    // mode (restrict=on in both), while the registry forward (10.0.2.100:5000) works in both.
    // busybox nc (busybox-static's wget crashes resolving even IP literals) tests the TCP
    // connect; the upper-cased markers never appear in the echoed command line.
    'RUN if nc -w 5 10.0.2.2 "$PORT" </dev/null; then h=open; else h=blocked; fi;' +
      ' if nc -w 5 10.0.2.100 5000 </dev/null; then g=ok; else g=fail; fi;' +
      ' echo "net_$h registry_$g" | tr a-z A-Z',
    '',
  ].join('\n');

  it(
    'keeps an isolated build from reaching anything outside the registry path',
    async () => {
      const src = await source({ Dockerfile: probe });
      const build = await client.waitFor(
        (await client.submit(src, { build_args: JSON.stringify({ PORT: String(daemon.port) }) }))
          .id,
      );
      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const logs = await client.logs(build.id);
      expect(logs).toContain('NET_BLOCKED REGISTRY_OK');
      expect(logs).not.toContain('NET_OPEN');
    },
    BUILD_TIMEOUT_MS,
  );

  it(
    'keeps an egress build from reaching the host directly too: its only way out is the proxy',
    async () => {
      const src = await source({ Dockerfile: probe });
      const build = await client.waitFor(
        (
          await client.submit(src, {
            network_mode: 'egress',
            build_args: JSON.stringify({ PORT: String(daemon.port) }),
          })
        ).id,
      );
      expect(build.status, JSON.stringify(build.error)).toBe('ready');
      const logs = await client.logs(build.id);
      expect(logs).toContain('NET_BLOCKED REGISTRY_OK');
      expect(logs).not.toContain('NET_OPEN');
    },
    BUILD_TIMEOUT_MS,
  );
});
