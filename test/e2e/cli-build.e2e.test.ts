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
const BUILD_TIMEOUT_MS = 300_000;

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
        KILN_BOOT_TIMEOUT_SECONDS: '120',
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
    'uploads the .dockerignore-filtered context, shows the engine steps, and exits 0 with the pushed image',
    async () => {
      const app = path.join(work, 'app');
      await mkdir(path.join(app, 'secrets'), { recursive: true });
      await writeFile(
        path.join(app, 'Dockerfile'),
        'FROM busybox\nARG GREETING\nCOPY . /app\nRUN echo "$GREETING" > /app/greeting.txt\n',
      );
      await writeFile(path.join(app, '.dockerignore'), 'secrets\n*.log\n');
      await writeFile(path.join(app, 'hello.txt'), 'hello from kiln build\n');
      await writeFile(path.join(app, 'secrets', 'key'), 'must not ship');
      await writeFile(path.join(app, 'debug.log'), 'must not ship');
      const token = await daemon.token('acme', ['builds:write', 'builds:read']);
      pane = await KilnPane.start(
        work,
        ['build', 'app', '-t', 'cli-web', '--build-arg', 'GREETING=hi-from-cli'],
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
      expect(screen).toContain(`image  ${build.result?.image_ref}`);
      expect(screen).toContain(`digest ${build.result?.image_digest}`);
      expect(screen).toMatch(/timings upload .* · queued .* · boot .* · building .* · total /);

      const image = await pullImage(
        `${daemon.registry}/acme/cli-web:latest`,
        await daemon.token('acme', ['registry:pull']),
      );
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
