import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredentialsDir } from '../../agent/credentials/credentials-dir.js';
import type { EngineHooks } from '../../agent/engines/build-engine.js';
import { BuildahEngine } from '../../agent/engines/buildah-engine.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { BuildPhase } from '../../common/protocol/agent-messages.js';
import type { BuildJob, LayerCompression } from '../../common/protocol/build-job.js';
import { resolveLayerCompression } from '../../src/config/layer-compression-config.js';
import { isRecordedProcessAlive } from '../../src/vm/process-identity.js';
import { imageFile, pullImage } from '../helpers/e2e-oci-image.js';
import { startE2eRegistry, type E2eRegistry } from '../helpers/e2e-registry.js';
import { descendantsOf, type ProcessRecord } from '../helpers/process-tree.js';
import { registryTestBuild } from '../helpers/registry-harness.js';

const execFileAsync = promisify(execFile);

const repoRoot = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');

/**
 * The agent's real Buildah engine, run on this host (as root, OCI isolation on runc, storage in a
 * temp dir) against Kiln's real registry on loopback, with the build's scoped registry token;
 * the image is pulled back with skopeo and its files checked.
 */
describe('BuildahEngine against the Kiln registry', () => {
  let registry: E2eRegistry;
  let work: string;

  beforeAll(async () => {
    registry = await startE2eRegistry();
    work = await mkdtemp(path.join(tmpdir(), 'kiln-buildah-real-'));
    await execFileAsync('bash', [
      path.join(repoRoot, 'scripts/seed-base-image.sh'),
      `${registry.host}:${registry.port}`,
      registry.adminToken,
    ]);
  }, 180_000);

  afterAll(async () => {
    // A cancelled Buildah leaves its overlay mounts behind (in the guest the VM just ends).
    const mounts = (await readFile('/proc/self/mounts', 'utf8'))
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((m) => m.startsWith(work))
      .sort()
      .reverse();
    for (const m of mounts) await execFileAsync('umount', ['-l', m]).catch(() => undefined);
    await registry.close();
    await rm(work, { recursive: true, force: true });
  });

  it('builds FROM the mirrored busybox, uses a build arg and a secret, pushes every tag and cache, and the pulled image holds the files', async () => {
    const host = `${registry.host}:${registry.port}`;
    const build = registryTestBuild({
      id: 'b_buildahreal0000000001',
      tenant: 'acme',
      repository: 'acme/web',
      cacheRepository: 'cache/acme/main',
    });
    const token = await registry.issueBuildToken(build);
    const jobRegistry: BuildJob['registry'] = {
      host,
      insecure: true,
      repository: 'acme/web',
      tags: [build.id, 'latest'],
      cacheRepository: 'cache/acme/main',
      mirror: { namespace: 'mirror', upstreams: ['docker.io'] },
    };
    const context = path.join(work, 'context');
    await mkdir(context, { recursive: true });
    await writeFile(path.join(context, 'hello.txt'), 'hello from the context\n');
    await writeFile(
      path.join(context, 'Dockerfile'),
      [
        'FROM busybox',
        'ARG GREETING=unset',
        'COPY hello.txt /hello.txt',
        'RUN echo "$GREETING" > /greeting.txt',
        'RUN --mount=type=secret,id=api_key sha256sum /run/secrets/api_key | cut -c1-64 > /secret-sha.txt',
        '',
      ].join('\n'),
    );
    const creds = await createCredentialsDir(
      path.join(work, 'memory'),
      jobRegistry,
      token,
      ['api_key'],
      { api_key: 's3cr3t-value' },
    );
    const phases: BuildPhase[] = [];
    let log = '';
    const hooks: EngineHooks = {
      phase: (p) => {
        phases.push(p);
        return Promise.resolve();
      },
      log: (_stream, text) => {
        log += text;
        return Promise.resolve();
      },
      signal: new AbortController().signal,
    };
    const engine = new BuildahEngine();
    const result = await engine.build(
      {
        contextDir: context,
        dockerfile: path.join(context, 'Dockerfile'),
        buildArgs: { GREETING: 'hi-from-build-arg' },
        imageRefs: jobRegistry.tags.map((t) => `${host}/acme/web:${t}`),
        cacheRef: `${host}/cache/acme/main`,
        registryHost: host,
        registryInsecure: true,
        credentials: creds,
        workDir: path.join(work, 'engine'),
        runDir: path.join(work, 'run'),
        layerCompression: resolveLayerCompression({ format: 'gzip', level: null }).engines,
      },
      hooks,
    );
    await creds.dispose();

    expect(phases).toEqual(['building', 'pushing']);
    expect(log).toContain('storage driver');
    expect(result.imageRef).toBe(`${host}/acme/web:${build.id}`);
    expect(result.digest).toMatch(/^sha256:[a-f0-9]{64}$/);

    const pulled = await pullImage(`${host}/acme/web:latest`, token);
    expect(pulled.digest).toBe(result.digest);
    expect(imageFile(pulled, 'hello.txt')).toBe('hello from the context\n');
    expect(imageFile(pulled, 'greeting.txt')).toBe('hi-from-build-arg\n');
    // The secret was readable during RUN; its value is in no layer and not in the config.
    expect(imageFile(pulled, 'secret-sha.txt')).toBe(
      `${createHash('sha256').update('s3cr3t-value').digest('hex')}\n`,
    );
    expect(imageFile(pulled, 'bin/busybox')).toBeDefined();
    for (const layer of pulled.layerBytes) {
      expect(layer.includes('s3cr3t-value')).toBe(false);
    }
    expect(JSON.stringify(pulled.config)).not.toContain('s3cr3t-value');

    // The base image digest is the one the registry serves for library/busybox.
    const base = await pullImage(`${host}/library/busybox:latest`, registry.adminToken);
    expect(result.baseImages).toEqual({ busybox: base.digest });

    // --cache-to pushed layer cache into the build's cache repository.
    const { stdout } = await execFileAsync('skopeo', [
      'list-tags',
      '--tls-verify=false',
      '--creds',
      `kiln:${token}`,
      `docker://${host}/cache/acme/main`,
    ]);
    expect((JSON.parse(stdout) as { Tags: string[] }).Tags.length).toBeGreaterThan(0);
    registry.endBuild(build.id);
  }, 300_000);

  async function runDockerfile(
    dockerfile: string,
    onLog: (text: string, abort: AbortController) => void | Promise<void>,
    extra: { layerCompression?: LayerCompression; files?: Record<string, string> } = {},
  ): Promise<{ error: unknown; ms: number; log: string; token: string }> {
    const host = `${registry.host}:${registry.port}`;
    const dir = await mkdtemp(path.join(work, 'ctx-'));
    await writeFile(path.join(dir, 'Dockerfile'), dockerfile);
    for (const [name, text] of Object.entries(extra.files ?? {})) {
      await writeFile(path.join(dir, name), text);
    }
    const jobRegistry: BuildJob['registry'] = {
      host,
      insecure: true,
      repository: 'acme/other',
      tags: ['x'],
      cacheRepository: null,
      mirror: { namespace: 'mirror', upstreams: ['docker.io'] },
    };
    const token = await registry.issueBuildToken(
      registryTestBuild({
        id: `b_${path.basename(dir).replace(/[^a-z0-9]/gi, '')}`,
        tenant: 'acme',
        repository: 'acme/other',
      }),
    );
    const creds = await createCredentialsDir(path.join(dir, 'memory'), jobRegistry, token, [], {});
    const abort = new AbortController();
    const started = Date.now();
    let aborted = 0;
    let log = '';
    const error: unknown = await new BuildahEngine({ killGraceMs: 2000 })
      .build(
        {
          contextDir: dir,
          dockerfile: path.join(dir, 'Dockerfile'),
          buildArgs: {},
          imageRefs: [`${host}/acme/other:x`],
          cacheRef: null,
          registryHost: host,
          registryInsecure: true,
          credentials: creds,
          workDir: path.join(dir, 'engine'),
          runDir: path.join(dir, 'run'),
          layerCompression: resolveLayerCompression(
            extra.layerCompression ?? { format: 'gzip', level: null },
          ).engines,
        },
        {
          phase: () => Promise.resolve(),
          log: async (_s, text) => {
            if (abort.signal.aborted && aborted === 0) aborted = Date.now();
            log += text;
            await onLog(text, abort);
            if (abort.signal.aborted && aborted === 0) aborted = Date.now();
          },
          signal: abort.signal,
        },
      )
      .then(
        () => null,
        (e: unknown) => e,
      );
    await creds.dispose();
    return { error, ms: Date.now() - (aborted || started), log, token };
  }

  /**
   * A layer that compresses well, at different sizes per level. Each push gets numbers of
   * its own (from `start`): Buildah's blob-info cache on this host remembers a layer it pushed
   * before and reuses that compressed blob instead of compressing again.
   */
  const COPY_NUMBERS = 'FROM busybox\nCOPY numbers.txt /numbers.txt\n';
  const numbers = (start: number): string =>
    Array.from({ length: 200_000 }, (_, i) => `${(start + i) * 7919}\n`).join('');

  /** The layers' media types and sizes of `acme/other:x` as the registry serves its manifest. */
  async function pushedLayers(token: string): Promise<{ mediaType: string; size: number }[]> {
    const { stdout } = await execFileAsync('skopeo', [
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      `kiln:${token}`,
      `docker://${registry.host}:${registry.port}/acme/other:x`,
    ]);
    return (JSON.parse(stdout) as { layers: { mediaType: string; size: number }[] }).layers;
  }

  it('recompresses the layer it built into zstd when asked', async () => {
    const zstd = await runDockerfile(COPY_NUMBERS, () => undefined, {
      files: { 'numbers.txt': numbers(3_000_000 + (Date.now() % 1_000_000)) },
      layerCompression: { format: 'zstd', level: 3 },
    });
    expect(zstd.error).toBeNull();
    const layers = await pushedLayers(zstd.token);
    // The base layer may be reused as gzip when this host's blob-info cache knows it.
    expect(layers.at(-1)?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+zstd');
  }, 180_000);

  it('pushes gzip level 1 for a configured none, which this Buildah cannot push uncompressed', async () => {
    // Level 9 gets the longer numbers (all of 11 digits; level 1's have 10 or 11), so the
    // level-1 layer can only come out bigger because of its level.
    const salt = Date.now() % 100_000;
    const best = await runDockerfile(COPY_NUMBERS, () => undefined, {
      files: { 'numbers.txt': numbers(2_000_000 + salt) },
      layerCompression: { format: 'gzip', level: 9 },
    });
    expect(best.error).toBeNull();
    const [, bestLayer] = await pushedLayers(best.token);
    const none = await runDockerfile(COPY_NUMBERS, () => undefined, {
      files: { 'numbers.txt': numbers(1_000_000 + salt) },
      layerCompression: { format: 'none', level: null },
    });
    expect(none.error).toBeNull();
    const [, fastLayer] = await pushedLayers(none.token);
    expect(fastLayer?.mediaType).toBe('application/vnd.oci.image.layer.v1.tar+gzip');
    // Level 1 really ran: its (shorter) layer is bigger than the one at level 9.
    expect(fastLayer!.size).toBeGreaterThan(bestLayer!.size);
  }, 180_000);

  it('fails with build_failed when a RUN step fails', async () => {
    const { error, log } = await runDockerfile(
      'FROM busybox\nRUN echo step-ran && exit 3\n',
      () => undefined,
    );
    expect(log).toContain('step-ran');
    expect(error).toBeInstanceOf(BuildFailure);
    expect((error as BuildFailure).code).toBe('build_failed');
  }, 120_000);

  it('stops a running build promptly on cancel, leaving none of its processes', async () => {
    const isSleep = (p: ProcessRecord) => p.argv.join(' ').endsWith('sleep 120');
    let engineTree: ProcessRecord[] = [];
    const { error, ms } = await runDockerfile(
      'FROM busybox\nRUN echo sleeping-now && sleep 120\n',
      async (text, abort) => {
        if (!text.includes('sleeping-now') || abort.signal.aborted) return;
        // The engine this test started (buildah, a child of this process) and everything
        // under it, recorded by pid and start time while the RUN step sleeps.
        // The step prints before its shell forks the sleep: wait (bounded) until it shows.
        for (let i = 0; i < 100 && !engineTree.some((p) => isSleep(p)); i++) {
          if (i > 0) await new Promise((resolve) => setTimeout(resolve, 50));
          const ours = await descendantsOf(process.pid);
          const engine = ours.find((p) => path.basename(p.argv[0] ?? '') === 'buildah');
          if (engine) engineTree = [engine, ...(await descendantsOf(engine.pid))];
        }
        abort.abort();
      },
    );
    expect((error as BuildFailure).message).toContain('cancelled');
    expect(ms).toBeLessThan(10_000);
    // The RUN step's process was among them (exec'd sleep, or the shell running it).
    expect(engineTree.filter((p) => isSleep(p))).not.toEqual([]);
    for (const p of engineTree) {
      const record = {
        vmId: 'engine',
        pid: p.pid,
        startTicks: p.startTicks,
        executable: path.basename(p.argv[0] ?? ''),
      };
      expect({ ...record, alive: await isRecordedProcessAlive(record) }).toEqual({
        ...record,
        alive: false,
      });
    }
  }, 120_000);
});
