import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KilnPane } from '../helpers/cli-tmux-pane.js';
import { E2eClient } from '../helpers/e2e-client.js';
import {
  disposeE2eDaemon,
  seedBaseImage,
  startE2eDaemon,
  type E2eDaemon,
} from '../helpers/e2e-daemon.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';

/**
 * `kiln build` as a user runs it, end to end: the CLI in a real pseudo-terminal (tmux), the
 * real daemon, a real QEMU microVM building with the guest image, the real registry.
 */
// Generous: under TCG on a loaded host one boot alone has taken over a minute, and this build
// runs two egress probes and pushes four references.
const BUILD_TIMEOUT_MS = 600_000;

describe('kiln build in a terminal against a daemon building in a microVM', () => {
  let daemon: E2eDaemon;
  let work: string;
  let pane: KilnPane | undefined;

  beforeAll(async () => {
    work = await mkdtemp(path.join(os.tmpdir(), 'kiln-e2e-cli-'));
    daemon = await startE2eDaemon({
      env: {
        KILN_MAX_CONCURRENT_BUILDS: '1',
        KILN_DEFAULT_MEMORY_MB: '1024',
        KILN_DEFAULT_CPUS: '1',
        KILN_SCRATCH_BYTES: '8G',
        // TCG on a host shared with other test runs: a boot has taken over two minutes.
        KILN_BOOT_TIMEOUT_SECONDS: '300',
      },
    });
    await seedBaseImage(daemon, await daemon.token('operator', ['registry:admin']));
  }, 240_000);

  afterAll(async () => {
    await pane?.close();
    await disposeE2eDaemon(daemon);
    await rm(work, { recursive: true, force: true });
  });

  it(
    'uploads the .dockerignore-filtered context, shows the engine steps and denials, and exits 0 with every -t pushed',
    async () => {
      const app = path.join(work, 'app');
      await mkdir(path.join(app, 'secrets'), { recursive: true });
      // Two CONNECTs to the build's egress proxy, both refused before any name lookup (no DNS
      // is ever asked): allowed.test is on the --allow-host list, so only its port is refused;
      // outside.test is not, although the operator's ceiling (`*`) would admit it.
      const probe = (target: string) =>
        `RUN printf 'CONNECT ${target} HTTP/1.1\\r\\nHost: ${target}\\r\\n\\r\\n' | nc -w 10 10.0.2.100 3128 | head -n 1 || true`;
      await writeFile(
        path.join(app, 'Dockerfile'),
        [
          'FROM busybox',
          'ARG GREETING',
          'COPY . /app',
          'RUN echo "$GREETING" > /app/greeting.txt',
          probe('allowed.test:22'),
          probe('outside.test:22'),
          '',
        ].join('\n'),
      );
      await writeFile(path.join(app, '.dockerignore'), 'secrets\n*.log\n');
      await writeFile(path.join(app, 'hello.txt'), 'hello from kiln build\n');
      await writeFile(path.join(app, 'secrets', 'key'), 'must not ship');
      await writeFile(path.join(app, 'debug.log'), 'must not ship');
      const token = await daemon.token('acme', ['builds:write', 'builds:read']);
      pane = await KilnPane.start(
        work,
        [
          'build',
          'app',
          '-t',
          'cli-web',
          '-t',
          'cli-web:v1',
          '-t',
          'team/cli-api:v1',
          '--build-arg',
          'GREETING=hi-from-cli',
          '--network',
          'egress',
          '--allow-host',
          'allowed.test',
        ],
        { KILN_URL: daemon.url, KILN_TOKEN: token },
      );
      const status = await pane.exitStatus(BUILD_TIMEOUT_MS - 30_000);
      const screen = await pane.screen();
      expect(status, screen).toBe(0);
      expect(screen).toMatch(/uploading context \[█+\] 100%/);
      expect(screen).toContain('=> booting the build VM');
      expect(screen).toMatch(/=> pushing \(building took \d/);
      const id = /build (b_\w+) accepted/.exec(screen)?.[1];
      expect(id).toBeDefined();
      const build = await new E2eClient(daemon, token).get(id!);
      expect(build.status).toBe('ready');
      expect(build.request.allowed_hosts).toEqual(['allowed.test']);
      expect(screen).toContain('   denied allowed.test:22: port not allowed');
      expect(screen).toContain('   denied outside.test:22: host not in allowed_hosts');
      const pushed = [
        `acme/cli-web:${id}`,
        'acme/cli-web:latest',
        'acme/cli-web:v1',
        'acme/team/cli-api:v1',
      ];
      const host = build.result?.image_ref.split('/')[0];
      const refs = pushed.map((p) => `${host}/${p}`);
      expect(build.result?.image_refs).toEqual(refs);
      expect(screen).toContain(refs.map((r) => `image  ${r}\n`).join(''));
      expect(screen).toContain(`digest ${build.result?.image_digest}`);
      expect(screen).toMatch(/timings upload .* · queued .* · boot .* · building .* · total /);

      // Every reference resolves to the one image the build pushed.
      const pull = await daemon.token('acme', ['registry:pull']);
      for (const ref of pushed.slice(2)) {
        const digest = (await pullImage(`${daemon.registry}/${ref}`, pull)).digest;
        expect(digest, ref).toBe(build.result?.image_digest);
      }
      const image = await pullImage(`${daemon.registry}/acme/cli-web:latest`, pull);
      expect(image.digest).toBe(build.result?.image_digest);
      expect(imageFile(image, 'app/hello.txt')).toBe('hello from kiln build\n');
      expect(imageFile(image, 'app/greeting.txt')).toBe('hi-from-cli\n');
      expect(imageFile(image, 'app/secrets/key')).toBeUndefined();
      expect(imageFile(image, 'app/debug.log')).toBeUndefined();
      expect(imageFile(image, 'app/Dockerfile')).toBeDefined();
    },
    BUILD_TIMEOUT_MS,
  );
});
