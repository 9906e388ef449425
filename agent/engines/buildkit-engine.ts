import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { BuildEngine, EngineHooks, EngineRequest, EngineResult } from './build-engine.js';
import {
  BUILDKIT_USER,
  type BuildkitDaemon,
  type BuildkitDaemonPaths,
  type BuildkitUser,
  startBuildkitDaemon,
} from './buildkit-daemon.js';
import { digestFromMetadata } from './buildkit-metadata.js';
import { BuildKitProgressParser } from './buildkit-progress.js';
import { captureCommand, runEngineProcess } from './engine-process.js';
import { BuildFailure } from '../../common/errors/build-failure.js';
import type { LayerCompression } from '../../common/protocol/build-job.js';

export interface BuildKitEngineOptions {
  buildctlPath: string;
  buildkitdPath: string;
  /** rootlesskit (Debian package `rootlesskit`). */
  rootlesskitPath: string;
  /** The account buildkitd runs as; null keeps the agent's own (the agent's tests only). */
  user?: BuildkitUser | null;
  /** Parent of the user's XDG_RUNTIME_DIR, `<base>/<uid>` (default /run/user). */
  runtimeBase?: string;
  killGraceMs?: number;
  readyTimeoutMs?: number;
}

/** Where rootless BuildKit keeps state for one build. */
export function buildkitPaths(
  request: Pick<EngineRequest, 'workDir' | 'runDir'>,
  runtimeDir: string,
): BuildkitDaemonPaths & { metadataFile: string } {
  return {
    runtimeDir,
    socket: path.join(runtimeDir, 'buildkit', 'buildkitd.sock'),
    config: path.join(runtimeDir, 'buildkit', 'buildkitd.toml'),
    // Owned by the BuildKit user: a new directory name, so state an older rootful buildkitd
    // left on a cache disk (`buildkit/root`, owned by root) is never opened.
    root: path.join(request.workDir, 'buildkit', 'rootless'),
    tmpDir: path.join(request.workDir, 'buildkit', 'tmp'),
    metadataFile: path.join(request.runDir, 'buildkit-metadata.json'),
  };
}

/**
 * The frontend options that make BuildKit's built-in Dockerfile frontend ignore a
 * `# syntax=` line: the frontend forwards to the named image only when its options carry no
 * `cmdline` (moby/buildkit frontend/dockerfile/builder/build.go), so setting one keeps the
 * build on the built-in frontend in every network mode. With an operator-chosen frontend image
 * (served from Kiln's registry), `gateway.v0` runs that image instead, and the same option
 * keeps the image from forwarding again.
 */
export function buildkitFrontendArgs(frontendImage: string | null): string[] {
  if (frontendImage === null) {
    return ['--frontend', 'dockerfile.v0', '--opt', 'cmdline=dockerfile.v0'];
  }
  return [
    '--frontend',
    'gateway.v0',
    '--opt',
    `source=${frontendImage}`,
    '--opt',
    `cmdline=${frontendImage}`,
  ];
}

/**
 * The image exporter's compression options (BuildKit docs, "Image and registry exporters",
 * compression): `uncompressed` for none, the level when one is set, and `force-compression`
 * so layers BuildKit already holds in another format (a base image's gzip layers, or the cache
 * disk's from builds with another setting) are converted too: the image gets what was asked.
 * zstd layers need OCI media types (Docker's v2 schema has no zstd layer type).
 */
export function buildkitCompressionOptions(compression: LayerCompression): string {
  const type = compression.format === 'none' ? 'uncompressed' : compression.format;
  const level = compression.level === null ? '' : `,compression-level=${compression.level}`;
  const oci = compression.format === 'zstd' ? ',oci-mediatypes=true' : '';
  return `compression=${type}${level},force-compression=true${oci}`;
}

/** Quotes a CSV field of a buildctl `--output`/`--export-cache` value when needed. */
function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * argv of `buildctl build` against the build's own buildkitd: the Dockerfile frontend (see
 * {@link buildkitFrontendArgs}), context and Dockerfile directories as locals, the Dockerfile
 * name as `filename`, build args as `build-arg:` opts, secrets as `--secret id=…,src=…`, the
 * image pushed to every reference in one exporter, registry cache export (`mode=max`) and
 * import, the metadata file for the digest, and rawjson progress for live logs and phases.
 */
export function buildkitBuildArgv(
  buildctl: string,
  address: string,
  request: EngineRequest,
  metadataFile: string,
): string[] {
  const argv = [
    buildctl,
    '--addr',
    address,
    'build',
    ...buildkitFrontendArgs(request.frontendImage ?? null),
    '--local',
    `context=${request.contextDir}`,
    '--local',
    `dockerfile=${path.dirname(request.dockerfile)}`,
    '--opt',
    `filename=${path.basename(request.dockerfile)}`,
  ];
  for (const [k, v] of Object.entries(request.buildArgs).sort(([a], [b]) => (a < b ? -1 : 1))) {
    argv.push('--opt', `build-arg:${k}=${v}`);
  }
  for (const [id, file] of Object.entries(request.credentials.secretFiles).sort(([a], [b]) =>
    a < b ? -1 : 1,
  )) {
    argv.push('--secret', `id=${id},src=${file}`);
  }
  const tls = request.registryInsecure ? ',registry.insecure=true' : '';
  argv.push(
    '--output',
    `type=image,${csvField(`name=${request.imageRefs.join(',')}`)},push=true${tls},${buildkitCompressionOptions(request.layerCompression.buildkit)}`,
  );
  if (request.cacheRef !== null) {
    argv.push(
      '--export-cache',
      `type=registry,ref=${request.cacheRef},mode=max${tls}`,
      '--import-cache',
      `type=registry,ref=${request.cacheRef}${tls}`,
    );
  }
  argv.push('--metadata-file', metadataFile, '--progress', 'rawjson');
  return argv;
}

/**
 * Environment of buildctl (run as root, the client side of the session): it reads the registry
 * credentials from DOCKER_CONFIG and the secret files itself, and hands them to buildkitd over
 * the session, so the BuildKit user never reads the credentials directory.
 */
export function buildkitEnv(request: EngineRequest, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return {
    ...base,
    DOCKER_CONFIG: request.credentials.dockerConfigDir,
    TMPDIR: path.join(request.workDir, 'tmp'),
  };
}

/** Parses `buildctl --version` ("buildctl github.com/moby/buildkit v0.12.5 bac3f2b…"). */
export function parseBuildctlVersion(output: string): string {
  const m = /\s(v\d+\.\d+\.\d+\S*)/.exec(output);
  return m?.[1] ?? output.trim();
}

/**
 * BuildKit (docs/contracts.md#build-engines), the default when its binaries were given to the
 * image recipe. buildkitd runs rootless for the one build: as the unprivileged BuildKit user,
 * under rootlesskit, with its state on the scratch or cache disk; RUN steps run in rootless runc
 * containers of that user namespace (docs/architecture.md#isolation). buildctl stays with the
 * agent (root) and talks to the daemon's socket.
 */
export class BuildKitEngine implements BuildEngine {
  readonly name = 'buildkit' as const;
  private readonly user: BuildkitUser | null;
  private readonly runtimeDir: string;
  /** The build's buildkitd while it runs (start() to the end of build()). */
  private daemon: BuildkitDaemon | null = null;

  constructor(private readonly options: BuildKitEngineOptions) {
    this.user = options.user === undefined ? BUILDKIT_USER : options.user;
    this.runtimeDir = path.join(
      options.runtimeBase ?? '/run/user',
      String(this.user?.uid ?? process.getuid?.() ?? 0),
    );
  }

  async version(): Promise<string> {
    return parseBuildctlVersion(await captureCommand([this.options.buildctlPath, '--version']));
  }

  /**
   * Starts the build's rootless buildkitd and waits until it answers (the agent's engine-start
   * step; build() calls it when nobody did). The BuildKit user's subordinate ids are checked,
   * its XDG_RUNTIME_DIR made (memory-backed, 0700, its own), its state directory on the
   * scratch or cache disk given to it, and the build's buildkitd.toml copied where it can read
   * it. The daemon is stopped when build() ends, or at once on cancel.
   */
  async start(request: EngineRequest, hooks: EngineHooks): Promise<void> {
    if (this.daemon !== null) return;
    await this.prepareUser();
    const paths = buildkitPaths(request, this.runtimeDir);
    for (const dir of [path.dirname(paths.root), paths.root, paths.tmpDir]) {
      await mkdir(dir, { recursive: true, mode: 0o755 });
      await this.own(dir);
    }
    // buildkitd.toml holds no secret (mirrors, plain-HTTP registries, GC limits): a copy the
    // BuildKit user can read, in its own runtime directory.
    await rm(paths.config, { force: true });
    await writeFile(paths.config, await readFile(request.credentials.buildkitdToml), {
      mode: 0o600,
    });
    await this.own(paths.config);

    const daemon = await startBuildkitDaemon({
      rootlesskitPath: this.options.rootlesskitPath,
      buildkitdPath: this.options.buildkitdPath,
      buildctlPath: this.options.buildctlPath,
      paths,
      user: this.user,
      signal: hooks.signal,
      readyTimeoutMs: this.options.readyTimeoutMs,
    });
    this.daemon = daemon;
    hooks.signal.addEventListener('abort', () => void daemon.stop(1000), { once: true });
    const who =
      daemon.buildkitd === null
        ? 'buildkitd process not found'
        : `buildkitd pid ${daemon.buildkitd.pid} uid ${daemon.buildkitd.uid}`;
    await hooks.log(
      'system',
      `buildkit: rootless buildkitd ready in ${daemon.readySeconds.toFixed(1)} s (${who}; rootlesskit, overlayfs snapshotter)\n`,
    );
  }

  private async prepareUser(): Promise<void> {
    if (this.user !== null) {
      const name = this.user.name;
      for (const file of ['/etc/subuid', '/etc/subgid']) {
        const text = await readFile(file, 'utf8').catch(() => '');
        if (!text.split('\n').some((l) => l.startsWith(`${name}:`))) {
          throw new BuildFailure(
            'internal',
            `rootless BuildKit: ${file} has no range for ${name} (the guest image is not built for BuildKit)`,
          );
        }
      }
    }
    await mkdir(path.dirname(this.runtimeDir), { recursive: true, mode: 0o755 });
    await mkdir(path.join(this.runtimeDir, 'buildkit'), { recursive: true, mode: 0o700 });
    await chmod(this.runtimeDir, 0o700);
    await this.own(this.runtimeDir);
    await this.own(path.join(this.runtimeDir, 'buildkit'));
  }

  private async own(target: string): Promise<void> {
    if (this.user !== null) await chown(target, this.user.uid, this.user.gid);
  }

  async build(request: EngineRequest, hooks: EngineHooks): Promise<EngineResult> {
    try {
      await this.start(request, hooks);
      const daemon = this.daemon;
      if (daemon === null) throw new BuildFailure('internal', 'buildkitd was not started');
      await mkdir(path.join(request.workDir, 'tmp'), { recursive: true });
      const { metadataFile } = buildkitPaths(request, this.runtimeDir);
      await mkdir(path.dirname(metadataFile), { recursive: true });
      return await this.solve(request, hooks, daemon.address, metadataFile);
    } finally {
      const daemon = this.daemon;
      this.daemon = null;
      await daemon?.stop(this.options.killGraceMs);
    }
  }

  private async solve(
    request: EngineRequest,
    hooks: EngineHooks,
    address: string,
    metadataFile: string,
  ): Promise<EngineResult> {
    await rm(metadataFile, { force: true });
    const parser = new BuildKitProgressParser();
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };

    await hooks.phase('building');
    const run = await runEngineProcess(
      buildkitBuildArgv(this.options.buildctlPath, address, request, metadataFile),
      {
        env: buildkitEnv(request, process.env),
        cwd: request.contextDir,
        signal: hooks.signal,
        killGraceMs: this.options.killGraceMs,
        onOutput: async (stream, text) => {
          const lines = (pending[stream] + text).split('\n');
          pending[stream] = lines.pop() ?? '';
          for (const line of lines) {
            const update = parser.parseLine(line, stream);
            if (update.phase !== null) await hooks.phase(update.phase);
            for (const chunk of update.chunks) await hooks.log(chunk.stream, chunk.text);
          }
        },
      },
    );
    for (const stream of ['stdout', 'stderr'] as const) {
      const update = parser.parseLine(pending[stream], stream);
      for (const chunk of update.chunks) await hooks.log(chunk.stream, chunk.text);
    }
    for (const chunk of parser.finish()) await hooks.log(chunk.stream, chunk.text);
    if (run.cancelled) throw new BuildFailure('build_failed', 'the build was cancelled');
    if (run.code !== 0) {
      throw new BuildFailure(
        'build_failed',
        parser.failureReason() ?? `buildctl build exited with ${run.code ?? run.signal ?? '?'}`,
      );
    }
    let metadata = '';
    try {
      metadata = await readFile(metadataFile, 'utf8');
    } catch {
      // handled below: no digest
    }
    const digest = digestFromMetadata(metadata);
    if (digest === null) {
      throw new BuildFailure('push_failed', 'buildctl wrote no image digest to its metadata file');
    }
    return {
      digest,
      imageRef: request.imageRefs[0] ?? '',
      baseImages: parser.resolvedBaseImages(),
    };
  }
}
