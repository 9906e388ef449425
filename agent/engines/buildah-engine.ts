import { mkdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type { BuildEngine, EngineHooks, EngineRequest, EngineResult } from './build-engine.js';
import { captureCommand, runEngineProcess, type EngineProcessExit } from './engine-process.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { EngineLayerCompression } from '../../common/protocol/build-job.js';
import { dockerfileBaseImages } from '../build/dockerfile-base-images.js';

export type BuildahStorageDriver = 'overlay' | 'vfs';

export interface BuildahEngineOptions {
  /** buildah executable (default "buildah"). */
  buildahPath?: string;
  /** Storage driver; when absent, overlay is probed first and vfs is the fallback. */
  storageDriver?: BuildahStorageDriver;
  /** Grace between SIGTERM and SIGKILL on cancel. */
  killGraceMs?: number;
}

/** Paths Buildah keeps its state in, all under the request's work/run directories. */
export interface BuildahPaths {
  root: string;
  runRoot: string;
  iidFile: string;
  digestFile: (index: number) => string;
}

export function buildahPaths(request: Pick<EngineRequest, 'workDir' | 'runDir'>): BuildahPaths {
  return {
    root: path.join(request.workDir, 'buildah', 'storage'),
    runRoot: path.join(request.runDir, 'buildah-run'),
    iidFile: path.join(request.workDir, 'buildah', 'image-id'),
    digestFile: (i) => path.join(request.workDir, 'buildah', `digest-${i}`),
  };
}

/** `buildah` global options shared by every subcommand. */
function buildahGlobalArgs(paths: BuildahPaths, driver: BuildahStorageDriver): string[] {
  return ['--root', paths.root, '--runroot', paths.runRoot, '--storage-driver', driver];
}

/**
 * argv of `buildah build`: OCI isolation on Debian's runc, so every RUN step gets its own PID,
 * mount, IPC and UTS namespaces and a container's default /dev (it sees neither the agent nor
 * the VM's disks, docs/architecture.md#isolation), with the VM's network namespace (`--network
 * host`: its only reachable addresses are the registry forward and the egress proxy);
 * `--layers` so cache works, registry cache from/to the cache repository, build args, secrets
 * as `--secret id=…,src=…` (never build args, never in layers), every tag, and the image id
 * written to a file. Registry TLS and mirrors come from registries.conf, credentials from the
 * auth file. `--retry 0`: a base image is pulled from the Kiln registry, which has already
 * asked the upstream and answers at once; Buildah's own retries (3, with growing delays) would
 * only delay the failure, and a registry the guest has no route to never answers.
 */
export function buildahBuildArgv(
  buildah: string,
  request: EngineRequest,
  paths: BuildahPaths,
  driver: BuildahStorageDriver,
): string[] {
  const argv = [
    buildah,
    ...buildahGlobalArgs(paths, driver),
    'build',
    '--isolation',
    'oci',
    '--network',
    'host',
    '--layers',
    '--retry',
    '0',
    '--authfile',
    request.credentials.authFile,
    '--file',
    request.dockerfile,
    '--iidfile',
    paths.iidFile,
  ];
  for (const ref of request.imageRefs) argv.push('--tag', ref);
  for (const [k, v] of Object.entries(request.buildArgs).sort(([a], [b]) => (a < b ? -1 : 1))) {
    argv.push('--build-arg', `${k}=${v}`);
  }
  for (const [id, file] of Object.entries(request.credentials.secretFiles).sort(([a], [b]) =>
    a < b ? -1 : 1,
  )) {
    argv.push('--secret', `id=${id},src=${file}`);
  }
  if (request.cacheRef !== null) {
    argv.push('--cache-from', request.cacheRef, '--cache-to', request.cacheRef);
  }
  argv.push(request.contextDir);
  return argv;
}

/**
 * `buildah push` flags for the layer compression the host chose for Buildah: the format, and
 * the level when one is set. Debian 12's Buildah (1.28, containers/image 5.23) recompresses
 * the uncompressed layers it keeps in storage into that format; it has no uncompressed push to
 * a registry (the host never asks for one, src/config/layer-compression-config.ts). A base
 * image's layers are recompressed too, unless Buildah's blob-info cache knows a copy the
 * registry already holds (it reuses that as it is; a fresh guest has no such cache).
 */
export function buildahCompressionArgs(compression: EngineLayerCompression['buildah']): string[] {
  const argv = ['--compression-format', compression.format];
  if (compression.level !== null) argv.push('--compression-level', String(compression.level));
  return argv;
}

/** argv of `buildah push` for one reference, writing the pushed manifest digest to a file. */
export function buildahPushArgv(
  buildah: string,
  request: EngineRequest,
  paths: BuildahPaths,
  driver: BuildahStorageDriver,
  imageId: string,
  ref: string,
  digestFile: string,
): string[] {
  return [
    buildah,
    ...buildahGlobalArgs(paths, driver),
    'push',
    '--authfile',
    request.credentials.authFile,
    '--digestfile',
    digestFile,
    ...buildahCompressionArgs(request.layerCompression.buildah),
    imageId,
    `docker://${ref}`,
  ];
}

/** Environment for Buildah: registries.conf and auth file from the credentials directory. */
export function buildahEnv(request: EngineRequest, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...base,
    CONTAINERS_REGISTRIES_CONF: request.credentials.registriesConf,
    REGISTRY_AUTH_FILE: request.credentials.authFile,
    BUILDAH_ISOLATION: 'oci',
    // Large layer blobs go to the scratch disk, not the memory-backed /tmp.
    TMPDIR: path.join(request.workDir, 'tmp'),
  };
}

/**
 * argv that frees Buildah's state before a build on a full cache disk: every image and layer
 * (`rmi --all --force`; Debian's Buildah has no `prune` subcommand yet). The cache-mount
 * directories under TMPDIR are removed with it (see {@link BuildahEngine.prune}).
 */
export function buildahPruneArgv(
  buildah: string,
  paths: BuildahPaths,
  driver: BuildahStorageDriver,
): string[] {
  return [buildah, ...buildahGlobalArgs(paths, driver), 'rmi', '--all', '--force'];
}

/** Parses `buildah --version` ("buildah version 1.28.2 (image-spec …)"). */
export function parseBuildahVersion(output: string): string {
  const m = /version\s+(\S+)/.exec(output);
  return m?.[1] ?? output.trim();
}

/** Buildah from Debian (docs/contracts.md#build-engines): always available in the guest. */
export class BuildahEngine implements BuildEngine {
  readonly name = 'buildah' as const;
  private readonly buildah: string;
  private driver: BuildahStorageDriver | undefined;

  constructor(private readonly options: BuildahEngineOptions = {}) {
    this.buildah = options.buildahPath ?? 'buildah';
    this.driver = options.storageDriver;
  }

  async version(): Promise<string> {
    return parseBuildahVersion(await captureCommand([this.buildah, '--version']));
  }

  async build(request: EngineRequest, hooks: EngineHooks): Promise<EngineResult> {
    const paths = buildahPaths(request);
    await mkdir(path.join(request.workDir, 'tmp'), { recursive: true });
    await mkdir(path.dirname(paths.iidFile), { recursive: true });
    const env = buildahEnv(request, process.env);
    const driver = await this.storageDriver(paths, env, hooks);

    await hooks.phase('building');
    const build = await this.run(
      buildahBuildArgv(this.buildah, request, paths, driver),
      env,
      hooks,
      request.contextDir,
    );
    if (build.cancelled) throw new BuildFailure('build_failed', 'the build was cancelled');
    if (build.code !== 0) {
      throw new BuildFailure(
        'build_failed',
        `buildah build exited with ${build.code ?? build.signal ?? '?'}`,
      );
    }
    const imageId = (await readFile(paths.iidFile, 'utf8')).trim();

    const dockerfileText = await readFile(request.dockerfile, 'utf8');
    const baseImages = await this.baseImageDigests(
      dockerfileBaseImages(dockerfileText, request.buildArgs),
      paths,
      driver,
      env,
    );

    await hooks.phase('pushing');
    let digest = '';
    for (const [i, ref] of request.imageRefs.entries()) {
      const digestFile = paths.digestFile(i);
      const push = await this.run(
        buildahPushArgv(this.buildah, request, paths, driver, imageId, ref, digestFile),
        env,
        hooks,
      );
      if (push.cancelled) throw new BuildFailure('push_failed', 'the push was cancelled');
      if (push.code !== 0) {
        throw new BuildFailure(
          'push_failed',
          `buildah push ${ref} exited with ${push.code ?? push.signal ?? '?'}`,
        );
      }
      const pushed = (await readFile(digestFile, 'utf8')).trim();
      if (i === 0) digest = pushed;
    }
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) {
      throw new BuildFailure('push_failed', `buildah reported no digest (got "${digest}")`);
    }
    return { digest, imageRef: request.imageRefs[0] ?? '', baseImages };
  }

  async prune(request: EngineRequest, hooks: EngineHooks): Promise<void> {
    const paths = buildahPaths(request);
    const env = buildahEnv(request, process.env);
    const driver = await this.storageDriver(paths, env, hooks);
    const out = await this.run(buildahPruneArgv(this.buildah, paths, driver), env, hooks);
    if (out.code !== 0) await hooks.log('system', `buildah rmi exited with ${out.code ?? '?'}\n`);
    // `RUN --mount=type=cache` directories live under TMPDIR as buildah-cache-<uid>.
    await rm(path.join(request.workDir, 'tmp'), { recursive: true, force: true });
  }

  /** Runs one buildah command with its output in the build log, stopped on cancel. */
  private run(
    argv: readonly string[],
    env: NodeJS.ProcessEnv,
    hooks: EngineHooks,
    cwd?: string,
  ): Promise<EngineProcessExit> {
    return runEngineProcess(argv, {
      env,
      ...(cwd === undefined ? {} : { cwd }),
      onOutput: (stream, text) => hooks.log(stream, text),
      signal: hooks.signal,
      killGraceMs: this.options.killGraceMs,
    });
  }

  /** overlay on the ext4 scratch disk when the kernel allows it, else vfs. */
  private async storageDriver(
    paths: BuildahPaths,
    env: NodeJS.ProcessEnv,
    hooks: EngineHooks,
  ): Promise<BuildahStorageDriver> {
    if (this.driver === undefined) {
      try {
        await captureCommand([this.buildah, ...buildahGlobalArgs(paths, 'overlay'), 'info'], env);
        this.driver = 'overlay';
      } catch (err) {
        await hooks.log(
          'system',
          `buildah: overlay storage unavailable (${(err as Error).message.split('\n')[0] ?? ''}); using vfs\n`,
        );
        this.driver = 'vfs';
      }
    }
    await hooks.log('system', `buildah: storage driver ${this.driver}\n`);
    return this.driver;
  }

  /** The manifest digest of each FROM image as pulled into local storage. */
  private async baseImageDigests(
    refs: string[],
    paths: BuildahPaths,
    driver: BuildahStorageDriver,
    env: NodeJS.ProcessEnv,
  ): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const ref of refs) {
      try {
        const text = await captureCommand(
          [
            this.buildah,
            ...buildahGlobalArgs(paths, driver),
            'inspect',
            '--type',
            'image',
            '--format',
            '{{.FromImageDigest}}',
            ref,
          ],
          env,
        );
        const digest = text.trim();
        if (/^sha256:[a-f0-9]{64}$/.test(digest)) out[ref] = digest;
      } catch {
        // An image the build never pulled (e.g. an unused stage) has no digest to report.
      }
    }
    return out;
  }
}
