import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACCOUNT_PHASES } from '../../src/builds/time-account.js';
import { E2eClient, type BuildView } from '../helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../helpers/e2e-daemon.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';
import { writeSourceTarball } from '../helpers/e2e-source.js';
import { findQemuProcesses } from '../helpers/e2e-vm-processes.js';
import { startDistribution, type DistributionRegistry } from '../helpers/mirror-distribution.js';
import { runClient } from '../helpers/registry-clients.js';

export type CaseEngine = 'buildah' | 'buildkit';

/**
 * Builds run one at a time (2-core machines); a TCG boot and build takes 40–90 s, more under
 * load.
 */
const BUILD_TIMEOUT_MS = 300_000;

/** Per-engine wording of the same facts in the build log. */
const CACHE_HIT: Record<CaseEngine, RegExp> = {
  buildah: /using cache/i,
  buildkit: /\bCACHED\b/,
};

/**
 * The RUN-step probe (busybox sh): every pid up to 4096 the step may signal (`kill -0`) and every
 * pid it can see in /proc, with their command lines; which of the VM's disks, /dev/kmsg,
 * /dev/mem and the agent's virtio-serial ports exist in its /dev; whether it can open /dev/kmsg
 * and the ports; and its uid map. Written into the image (pulled back by the test) and the log.
 */
const ISOLATION_PROBE = [
  'RUN set +e; {',
  '  for p in $(seq 1 4096); do if kill -0 "$p" 2>/dev/null; then echo "KILLABLE $p $(tr "\\0" " " < /proc/$p/cmdline 2>/dev/null)"; fi; done;',
  '  for p in $(ls /proc | grep -E "^[0-9]+$"); do echo "VISIBLE $p $(tr "\\0" " " < /proc/$p/cmdline 2>/dev/null)"; done;',
  '  for d in /dev/vd* /dev/kmsg /dev/mem /dev/vport*; do if [ -e "$d" ]; then echo "DEVICE $d"; fi; done;',
  '  for d in /dev/kmsg /dev/mem /dev/vport0p1 /dev/vport1p1 /dev/vport2p1 /dev/vport3p1 /dev/vport4p1; do if [ -e "$d" ] && : <"$d"; then echo "OPENED $d"; fi; done;',
  '  echo "UIDMAP $(tr -s " " < /proc/self/uid_map | tr "\\n" ";")";',
  '  } > /probe.txt 2>&1; cat /probe.txt',
].join(' \\\n');

/**
 * The end-to-end cases every engine passes, against one daemon (QEMU microVMs, the real guest
 * image, the real registry, skopeo as the client) with a loopback Distribution as its
 * `docker.io` upstream: `library/busybox` seeded into Kiln, `someorg/tool:1` (busybox again)
 * only upstream. Each case is one build (two for the cache), each asks for `engine`.
 */
export function defineBuildCases(engine: CaseEngine): void {
  describe(`builds under ${engine} in QEMU microVMs, end to end`, () => {
    let daemon: E2eDaemon;
    let hub: DistributionRegistry | undefined;
    let client: E2eClient;
    let pullToken: string;
    let work: string;
    let sourceCount = 0;

    beforeAll(async () => {
      work = await mkdtemp(path.join(os.tmpdir(), `kiln-e2e-${engine}-`));
      hub = await startDistribution('hub', 'hub-secret');
      const credentials = path.join(work, 'upstream-auth.json');
      const basic = Buffer.from(`${hub.user}:${hub.password}`).toString('base64');
      await writeFile(credentials, JSON.stringify({ auths: { 'docker.io': { auth: basic } } }));
      daemon = await startE2eDaemon({
        env: {
          KILN_MAX_CONCURRENT_BUILDS: '1',
          KILN_DEFAULT_MEMORY_MB: '1024',
          KILN_DEFAULT_CPUS: '1',
          KILN_SCRATCH_BYTES: '8G',
          // Shared 2-core CI machines: TCG boots take 12–25 s under load; leave headroom.
          KILN_BOOT_TIMEOUT_SECONDS: '120',
          KILN_MIRROR_UPSTREAMS: `docker.io=${hub.url}`,
          KILN_MIRROR_INSECURE_UPSTREAMS: 'docker.io',
          KILN_MIRROR_CREDENTIALS_FILE: credentials,
        },
      });
      const admin = await daemon.token('operator', ['registry:admin']);
      await seedBaseImage(daemon, admin);
      await writeFile(path.join(work, 'empty-auth.json'), '{"auths":{}}');
      const copy = await runClient('skopeo', [
        'copy',
        '--authfile',
        path.join(work, 'empty-auth.json'),
        '--src-tls-verify=false',
        '--src-creds',
        `operator:${admin}`,
        '--dest-tls-verify=false',
        '--dest-creds',
        `${hub.user}:${hub.password}`,
        `docker://${daemon.registry}/library/busybox:latest`,
        `docker://${hub.host}/someorg/tool:1`,
      ]);
      if (!copy.ok) throw new Error(`seeding someorg/tool upstream failed: ${copy.stderr}`);
      client = new E2eClient(
        daemon,
        await daemon.token('acme', ['builds:write', 'builds:read', 'secrets:write']),
      );
      pullToken = await daemon.token('acme', ['registry:pull']);
    }, 300_000);

    afterAll(async () => {
      await disposeE2eDaemon(daemon);
      await hub?.close();
      await rm(work, { recursive: true, force: true });
    });

    async function source(files: Record<string, string>): Promise<string> {
      sourceCount += 1;
      return (await writeSourceTarball(path.join(work, `src-${sourceCount}.tar.gz`), files)).path;
    }

    const dockerfile = (lines: string[]): string => [...lines, ''].join('\n');

    /** Submits with this file's engine and waits for the end. */
    async function build(
      files: Record<string, string>,
      fields: Record<string, string> = {},
    ): Promise<BuildView> {
      const submitted = await client.submit(await source(files), { engine, ...fields });
      const done = await client.waitFor(submitted.id);
      // Printed for the closing note's engine comparison.
      console.log(
        `[${engine}] ${expect.getState().currentTestName ?? ''}: ${JSON.stringify(done.timings.phases)}`,
      );
      return done;
    }

    async function pulled(b: BuildView) {
      return pullImage(`${daemon.registry}/${b.repository}:${b.id}`, pullToken);
    }

    async function expectNoVmLeft(buildId: string): Promise<void> {
      expect(await findQemuProcesses(buildId)).toEqual([]);
      expect(await readdir(path.join(daemon.dataDir, 'vms')).catch(() => [])).toEqual([]);
    }

    it(
      'builds a `# syntax=docker/dockerfile:1` Dockerfile with COPY, RUN --mount, ENV and CMD; skopeo pulls back the files, config and digest',
      async () => {
        const lines = [
          '# syntax=docker/dockerfile:1',
          'FROM busybox',
          'COPY hello.txt /app/hello.txt',
          'RUN --mount=type=cache,target=/var/cache/probe echo "built-in-vm" > /app/built.txt && ls /app',
          ...(engine === 'buildkit'
            ? ['RUN <<EOF', 'echo "from a heredoc" > /app/heredoc.txt', 'EOF']
            : []),
          'ENV GREETING=hello-kiln',
          'CMD ["cat", "/app/hello.txt"]',
        ];
        const b = await build(
          { Dockerfile: dockerfile(lines), 'hello.txt': 'hello from the source tarball\n' },
          { image_name: 'web' },
        );
        expect(b.status, JSON.stringify(b.error)).toBe('ready');
        expect(b.result?.image_ref).toContain(`acme/web:${b.id}`);
        // Every second from the upload to ready is accounted for: the host's phases, and the
        // guest's inside the window the host observed; none negative, the sum the total.
        const { timings } = b;
        // Every phase but those this build has no cause for: no cache scope, no restart.
        const untouched = ['exporting_cache', 'syncing_cache', 'interrupted'];
        expect(Object.keys(timings.phases)).toEqual(
          expect.arrayContaining(ACCOUNT_PHASES.filter((p) => !untouched.includes(p))),
        );
        expect(Object.values(timings.phases).every((s) => s >= 0)).toBe(true);
        const sum = Object.values(timings.phases).reduce((x, y) => x + y, 0);
        expect(timings.total_seconds).not.toBeNull();
        expect(Math.abs(sum - (timings.total_seconds ?? 0))).toBeLessThan(0.05);
        expect(Math.abs(timings.unaccounted_seconds)).toBeLessThan(0.05);
        expect(timings.phases.boot).toBeGreaterThan(0);
        expect(timings.phases.building).toBeGreaterThan(0);
        expect(timings.guest_reported).toEqual(expect.arrayContaining(['extracting', 'building']));
        // The host's own view of the agent window covers the same seconds.
        const agentWindow = [...timings.guest_reported, 'agent_other'].reduce(
          (x, p) => x + (timings.phases[p] ?? 0),
          0,
        );
        const observed = Object.values(timings.host_observed).reduce((x, y) => x + y, 0);
        expect(Math.abs(observed - agentWindow)).toBeLessThan(0.05);
        const metrics = await (await fetch(`${daemon.url}/metrics`)).text();
        expect(metrics).toMatch(/^kiln_build_phase_seconds_count\{phase="building"\} [1-9]/m);
        expect(metrics).toMatch(
          /^kiln_build_phase_seconds_bucket\{phase="boot",le="\+Inf"\} [1-9]/m,
        );
        expect(b.result?.provenance.engine).toMatchObject({ name: engine });
        const image = await pulled(b);
        expect(image.digest).toBe(b.result?.image_digest);
        expect(imageFile(image, 'app/hello.txt')).toBe('hello from the source tarball\n');
        expect(imageFile(image, 'app/built.txt')).toBe('built-in-vm\n');
        if (engine === 'buildkit') {
          expect(imageFile(image, 'app/heredoc.txt')).toBe('from a heredoc\n');
        }
        expect(imageFile(image, 'bin/busybox')).toBeDefined();
        expect(image.config.config?.Env).toContain('GREETING=hello-kiln');
        expect(image.config.config?.Cmd).toEqual(['cat', '/app/hello.txt']);
        const latest = await pullImage(`${daemon.registry}/acme/web:latest`, pullToken);
        expect(latest.digest).toBe(b.result?.image_digest);
        await expectNoVmLeft(b.id);
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'builds multi-stage with build_args and a secret: only the final stage ships, the arg is applied, the secret reaches no layer',
      async () => {
        const secret = `kiln-e2e-secret-${engine}-${Date.now()}`;
        await client.putSecret('npm_token', secret);
        const b = await build(
          {
            Dockerfile: dockerfile([
              'FROM busybox AS builder',
              'ARG VERSION',
              'RUN mkdir /out && echo "version=$VERSION" > /out/version.txt && echo scratch > /builder-only.txt',
              'RUN --mount=type=secret,id=npm_token sha256sum /run/secrets/npm_token | cut -d" " -f1 > /out/secret.sha256',
              'FROM busybox',
              'COPY --from=builder /out/ /',
            ]),
          },
          { build_args: JSON.stringify({ VERSION: '1.2.3' }), secrets: '["npm_token"]' },
        );
        expect(b.status, JSON.stringify(b.error)).toBe('ready');
        const image = await pulled(b);
        expect(imageFile(image, 'version.txt')).toBe('version=1.2.3\n');
        expect(imageFile(image, 'builder-only.txt')).toBeUndefined();
        expect(imageFile(image, 'secret.sha256')?.trim()).toBe(
          createHash('sha256').update(secret).digest('hex'),
        );
        for (const layer of image.layerBytes) expect(layer.includes(secret)).toBe(false);
        expect(JSON.stringify(image.config)).not.toContain(secret);
        expect(await client.logs(b.id)).not.toContain(secret);
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'reuses cached layers on a second build of the same source with the same cache_scope',
      async () => {
        const files = {
          Dockerfile: dockerfile([
            'FROM busybox',
            'RUN cat /proc/sys/kernel/random/uuid > /stamp.txt',
          ]),
        };
        const first = await build(files, { cache_scope: `e2e-${engine}` });
        expect(first.status, JSON.stringify(first.error)).toBe('ready');
        const second = await build(files, { cache_scope: `e2e-${engine}` });
        expect(second.status, JSON.stringify(second.error)).toBe('ready');
        // The RUN layer writes a fresh random uuid: the same stamp means the layer came from cache.
        expect(imageFile(await pulled(second), 'stamp.txt')).toBe(
          imageFile(await pulled(first), 'stamp.txt'),
        );
        expect(await client.logs(second.id)).toMatch(CACHE_HIT[engine]);
      },
      2 * BUILD_TIMEOUT_MS,
    );

    it(
      'builds FROM a Docker Hub image outside library (someorg/tool) through the mirror',
      async () => {
        const b = await build({
          Dockerfile: dockerfile(['FROM someorg/tool:1', 'RUN echo "on someorg" > /org.txt']),
        });
        expect(b.status, JSON.stringify(b.error)).toBe('ready');
        expect(imageFile(await pulled(b), 'org.txt')).toBe('on someorg\n');
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'ends a failing RUN as failed with build_failed and the last log lines',
      async () => {
        const b = await build({
          Dockerfile: dockerfile(['FROM busybox', 'RUN echo "about to fail: $((40+2))" && exit 3']),
        });
        expect(b.status).toBe('failed');
        expect(b.error?.code).toBe('build_failed');
        expect(b.error?.log_tail.join('\n')).toContain('about to fail: 42');
        await expectNoVmLeft(b.id);
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'ends a build over its timeout as failed with timeout, its VM gone',
      async () => {
        const b = await build(
          { Dockerfile: dockerfile(['FROM busybox', 'RUN sleep 600']) },
          { timeout_seconds: '30' },
        );
        expect(b.status).toBe('failed');
        expect(b.error?.code).toBe('timeout');
        await expectNoVmLeft(b.id);
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'cancels a build mid-build: cancelled, and no QEMU process remains',
      async () => {
        const src = await source({ Dockerfile: dockerfile(['FROM busybox', 'RUN sleep 600']) });
        const submitted = await client.submit(src, { engine });
        const building = await client.waitFor(submitted.id, (b) => b.status === 'building');
        expect(building.status).toBe('building');
        expect(await findQemuProcesses(submitted.id)).toHaveLength(1);

        const asked = Date.now();
        expect(await client.cancel(submitted.id)).toBeLessThan(300);
        while ((await findQemuProcesses(submitted.id)).length > 0 && Date.now() - asked < 10_000) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        const vmGoneSeconds = (Date.now() - asked) / 1000;
        const b = await client.waitFor(submitted.id);
        expect(b.status).toBe('cancelled');
        expect(vmGoneSeconds).toBeLessThan(2);
        await expectNoVmLeft(b.id);
      },
      BUILD_TIMEOUT_MS,
    );

    // The host (10.0.2.2 in QEMU user networking) runs the daemon on PORT: reachable in no
    // mode (restrict=on in both), while the registry forward (10.0.2.100:5000) works in both.
    // busybox nc tests the TCP connect; the upper-cased markers never appear in the echoed
    // command line.
    const netProbe = [
      'RUN if nc -w 5 10.0.2.2 "$PORT" </dev/null; then h=open; else h=blocked; fi;' +
        ' if nc -w 5 10.0.2.100 5000 </dev/null; then g=ok; else g=fail; fi;' +
        ' echo "net_$h registry_$g" | tr a-z A-Z',
    ];

    it(
      'runs each RUN step isolated from the agent: no VM process to see or signal, no VM disk, kmsg, mem or agent port; only the registry path on the network',
      async () => {
        const b = await build(
          {
            Dockerfile: dockerfile(['FROM busybox', 'ARG PORT', ISOLATION_PROBE, ...netProbe]),
          },
          { build_args: JSON.stringify({ PORT: String(daemon.port) }) },
        );
        expect(b.status, JSON.stringify(b.error)).toBe('ready');
        const probe = imageFile(await pulled(b), 'probe.txt') ?? '';
        const lines = probe.split('\n');
        const killable = lines.filter((l) => l.startsWith('KILLABLE '));
        const visible = lines.filter((l) => l.startsWith('VISIBLE '));
        // The probe sees (and may signal) its own processes, so it did look…
        expect(killable.length).toBeGreaterThan(0);
        expect(visible.length).toBeGreaterThan(0);
        // …and none of the VM's: not kiln-init (the VM's pid 1), not the agent (node).
        for (const line of [...killable, ...visible]) {
          expect(line).not.toMatch(/kiln-init|kiln-agent|node|buildkitd|rootlesskit|buildah/);
        }
        expect(lines.filter((l) => l.startsWith('DEVICE '))).toEqual([]);
        expect(lines.filter((l) => l.startsWith('OPENED '))).toEqual([]);
        const uidMap = /^UIDMAP (.*)$/m.exec(probe)?.[1] ?? '';
        expect(uidMap).not.toBe('');
        if (engine === 'buildkit') {
          // Rootless: the step's root is not the VM's root (`0 0 4294967295` would be).
          expect(uidMap).not.toMatch(/^ ?0 0 4294967295;/);
          expect(uidMap).toMatch(/^ ?0 1000 1;/);
          // buildkitd itself, as the VM's own namespace sees it, runs as the BuildKit user.
          const logs = await client.logs(b.id);
          const uid = /rootless buildkitd ready in [\d.]+ s \(buildkitd pid \d+ uid (\d+)/.exec(
            logs,
          )?.[1];
          expect(uid).toBe('1000');
        }
        const logs = await client.logs(b.id);
        expect(logs).toContain('NET_BLOCKED REGISTRY_OK');
        expect(logs).not.toContain('NET_OPEN');
      },
      BUILD_TIMEOUT_MS,
    );

    it(
      'keeps an egress build (with a `# syntax=` line) from reaching the host directly too: its only way out is the proxy',
      async () => {
        const b = await build(
          {
            Dockerfile: dockerfile([
              '# syntax=docker/dockerfile:1',
              'FROM busybox',
              'ARG PORT',
              ...netProbe,
              // HTTP_PROXY is one of the engines' predefined build args: the egress proxy.
              'RUN hp="${HTTP_PROXY#http://}"; if nc -w 5 "${hp%:*}" "${hp##*:}" </dev/null; then p=ok; else p=fail; fi;' +
                ' echo "proxy_$p" | tr a-z A-Z',
            ]),
          },
          { network_mode: 'egress', build_args: JSON.stringify({ PORT: String(daemon.port) }) },
        );
        expect(b.status, JSON.stringify(b.error)).toBe('ready');
        const logs = await client.logs(b.id);
        expect(logs).toContain('PROXY_OK');
        expect(logs).toContain('NET_BLOCKED REGISTRY_OK');
        expect(logs).not.toContain('NET_OPEN');
      },
      BUILD_TIMEOUT_MS,
    );
  });
}

/** The engines the guest image under test carries (its image.json), to fail loudly without. */
export async function guestImageEngines(): Promise<string[]> {
  const dir = process.env.KILN_IMAGE_DIR;
  if (dir === undefined) throw new Error('KILN_IMAGE_DIR is not set (the e2e globalSetup sets it)');
  const json = JSON.parse(await readFile(path.join(dir, 'image.json'), 'utf8')) as {
    engines?: string[];
  };
  return json.engines ?? [];
}
