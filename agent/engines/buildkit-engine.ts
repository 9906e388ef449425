import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { BuildEngine, EngineHooks, EngineRequest, EngineResult } from './build-engine.js';
import { digestFromMetadata } from './buildkit-metadata.js';
import { BuildKitProgressParser } from './buildkit-progress.js';
import { captureCommand, runEngineProcess } from './engine-process.js';
import { BuildFailure } from '../../common/errors/build-failure.js';

export interface BuildKitEngineOptions {
  /** buildctl-daemonless.sh (starts a buildkitd for the one build, then stops it). */
  daemonlessPath: string;
  buildctlPath: string;
  killGraceMs?: number;
}

/** Where BuildKit keeps state for one build. */
function buildkitPaths(request: Pick<EngineRequest, 'workDir' | 'runDir'>): {
  root: string;
  metadataFile: string;
} {
  return {
    root: path.join(request.workDir, 'buildkit', 'root'),
    metadataFile: path.join(request.workDir, 'buildkit', 'metadata.json'),
  };
}

/** Quotes a CSV field of a buildctl `--output`/`--export-cache` value when needed. */
function csvField(value: string): string {
  return /[",\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/**
 * argv of `buildctl-daemonless.sh build` with the Dockerfile frontend: context and Dockerfile
 * directories as locals, the Dockerfile name as `filename`, build args as `build-arg:` opts,
 * secrets as `--secret id=…,src=…`, the image pushed to every reference in one exporter,
 * registry cache export (`mode=max`) and import, the metadata file for the digest, and
 * rawjson progress for live logs and phases.
 */
export function buildkitBuildArgv(
  daemonless: string,
  request: EngineRequest,
  metadataFile: string,
): string[] {
  const argv = [
    daemonless,
    'build',
    '--frontend',
    'dockerfile.v0',
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
    `type=image,${csvField(`name=${request.imageRefs.join(',')}`)},push=true${tls}`,
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
 * Environment for buildctl-daemonless.sh: buildkitd gets its config (mirrors, plain-HTTP
 * registry) and a root on the scratch disk through BUILDKITD_FLAGS; buildctl reads the
 * registry credentials from DOCKER_CONFIG (config.json).
 */
export function buildkitEnv(request: EngineRequest, base: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const { root } = buildkitPaths(request);
  return {
    ...base,
    BUILDKITD_FLAGS: `--config ${request.credentials.buildkitdToml} --root ${root}`,
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
 * BuildKit (docs/contracts.md#build-engines), the production default when its binaries were given
 * to the image recipe. The guest is a single-tenant VM and the agent is root in it, so buildkitd
 * runs as root there (the VM is the isolation boundary); rootlesskit is shipped for hosts that run
 * the agent unprivileged, which buildctl-daemonless.sh picks up by itself.
 */
export class BuildKitEngine implements BuildEngine {
  readonly name = 'buildkit' as const;

  constructor(private readonly options: BuildKitEngineOptions) {}

  async version(): Promise<string> {
    return parseBuildctlVersion(await captureCommand([this.options.buildctlPath, '--version']));
  }

  async build(request: EngineRequest, hooks: EngineHooks): Promise<EngineResult> {
    const { root, metadataFile } = buildkitPaths(request);
    await mkdir(root, { recursive: true });
    await mkdir(path.join(request.workDir, 'tmp'), { recursive: true });
    const parser = new BuildKitProgressParser();
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };

    await hooks.phase('building');
    const run = await runEngineProcess(
      buildkitBuildArgv(this.options.daemonlessPath, request, metadataFile),
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
