import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { resolveBuildContext } from './build-context.js';
import { findLockfiles } from './lockfiles.js';
import { PhaseTracker } from './phase-tracker.js';
import { proxyBuildArgs } from './proxy-build-args.js';
import { isArchiveError } from '../../common/archive/archive-error.js';
import { maxTarStreamBytes } from '../../common/archive/archive-limits.js';
import type { BuildErrorCode } from '../../common/errors/build-error-code.js';
import { BuildFailure, isBuildFailure } from '../../common/errors/build-failure.js';
import type {
  BuildPhase,
  LogStream,
  ResultMessage,
  StartMessage,
} from '../../common/protocol/agent-messages.js';
import { pickEngineName, type BuildJob } from '../../common/protocol/build-job.js';
import type { Clock } from '../../common/time/clock.js';
import { createCredentialsDir, type CredentialsDir } from '../credentials/credentials-dir.js';
import type { BuildEngine } from '../engines/build-engine.js';
import type { LogSink } from '../logs/log-sink.js';
import { decompressSource } from '../source/decompress-stream.js';
import { readSourceDisk, verifySourceDisk } from '../source/source-disk.js';
import { unpackSource } from '../source/unpack-source.js';
import { diskUsage, overThreshold } from '../volumes/cache-disk.js';

/** Where the build runs inside the guest. */
export interface BuildEnvironment {
  /** Block device (or file) holding the source archive. */
  sourceDevice: string;
  /** Scratch filesystem for the unpacked source and engine storage. */
  scratchDir: string;
  /** Memory-backed directory for credentials and run state (/run in the guest). */
  memoryDir: string;
  /**
   * The mounted `kiln-cache` disk, or null without one. When build.json names a cache, the
   * engine keeps its whole state here (Buildah's storage and its cache mounts, BuildKit's
   * root), so the next build of the scope starts warm.
   */
  cacheDir: string | null;
}

export interface RunBuildDeps {
  job: BuildJob;
  start: StartMessage;
  environment: BuildEnvironment;
  /** Engines present, best first. */
  engines: readonly BuildEngine[];
  phase: (phase: BuildPhase, at: number) => Promise<void>;
  logs: LogSink;
  clock: Clock;
  /** Aborted by `cancel` (or the host going away). */
  signal: AbortSignal;
}

/** Picks the engine build.json asks for; "auto" takes the best one present. */
function selectEngine(engines: readonly BuildEngine[], wanted: BuildJob['engine']): BuildEngine {
  const name = pickEngineName(
    wanted,
    engines.map((e) => e.name),
  );
  const engine = engines.find((e) => e.name === name);
  if (!engine) {
    throw new BuildFailure(
      'internal',
      `engine "${wanted}" is not in this image (present: ${engines.map((e) => e.name).join(', ') || 'none'})`,
    );
  }
  return engine;
}

/**
 * Runs one build end to end in the guest: verify and unpack the source and resolve the
 * context (`extracting`), select the engine, write credentials to memory, prune a full cache
 * disk and start the engine (`engine_start`), run the engine (`building`, `pushing`,
 * `exporting_cache`) and return the `result` message: digest, reference, phase durations and
 * provenance, or an error code with the message and the last log lines.
 */
export async function runBuild(deps: RunBuildDeps): Promise<ResultMessage> {
  const { job, environment, logs, clock, signal } = deps;
  const phases = new PhaseTracker(clock);
  const enter = async (phase: BuildPhase): Promise<void> => {
    const at = phases.enter(phase);
    await deps.phase(phase, at);
  };
  const work = path.join(environment.scratchDir, 'build');
  const sourceRoot = path.join(work, 'src');
  const tempDir = path.join(work, 'tmp');
  let credentials: CredentialsDir | null = null;
  try {
    await enter('extracting');
    await rm(work, { recursive: true, force: true });
    await mkdir(sourceRoot, { recursive: true, mode: 0o755 });
    await mkdir(tempDir, { recursive: true, mode: 0o700 });
    const disk = {
      devicePath: environment.sourceDevice,
      sizeBytes: job.source.sizeBytes,
      sha256: job.source.sha256,
    };
    const sourceSha256 = await verifySourceDisk(disk);
    const unpackStarted = clock.now().getTime();
    const unpacked = await unpackSource(
      decompressSource(readSourceDisk(disk), job.source.compression, maxTarStreamBytes(job.source)),
      sourceRoot,
      job.source,
    );
    await logs.system(
      `unpacked ${unpacked.entries.length} entries, ${unpacked.unpackedBytes} bytes in ${((clock.now().getTime() - unpackStarted) / 1000).toFixed(2)} s; tree sha256 ${unpacked.treeSha256}`,
    );
    const context = await resolveBuildContext(sourceRoot, unpacked.entries, job, tempDir);
    throwIfCancelled(signal);

    await enter('engine_start');

    const engine = selectEngine(deps.engines, job.engine);
    const engineVersion = await engine.version();
    await logs.system(`engine ${engine.name} ${engineVersion}`);
    const cacheDir = job.cache === null ? null : environment.cacheDir;
    const cacheUsage = cacheDir === null ? null : await diskUsage(cacheDir);
    if (job.cache !== null && cacheDir === null) {
      await logs.system('cache disk not mounted: building without it');
    }
    credentials = await createCredentialsDir(
      path.join(environment.memoryDir, 'credentials'),
      job.registry,
      deps.start.registryToken,
      job.secretIds,
      deps.start.secrets,
      cacheUsage === null || job.cache === null
        ? null
        : { diskBytes: cacheUsage.totalBytes, thresholdPercent: job.cache.gcThresholdPercent },
    );
    const missing = job.secretIds.filter((id) => deps.start.secrets[id] === undefined);
    if (missing.length > 0) await logs.system(`secrets without a value: ${missing.join(', ')}`);

    const host = job.registry.host;
    const request = {
      contextDir: context.contextDir,
      dockerfile: context.dockerfile,
      buildArgs: { ...job.buildArgs, ...proxyBuildArgs(job.egressProxy) },
      imageRefs: [
        ...job.registry.tags.map((t) => `${host}/${job.registry.repository}:${t}`),
        ...(job.registry.otherRefs ?? []).map((r) => `${host}/${r.repository}:${r.tag}`),
      ],
      cacheRef:
        job.registry.cacheRepository === null ? null : `${host}/${job.registry.cacheRepository}`,
      registryHost: host,
      registryInsecure: job.registry.insecure,
      credentials,
      workDir: cacheDir === null ? path.join(work, 'engine') : path.join(cacheDir, 'engine'),
      runDir: path.join(environment.memoryDir, 'engine'),
      frontendImage: job.buildkitFrontend === null ? null : `${host}/${job.buildkitFrontend}`,
      layerCompression: job.layerCompression,
    };
    const hooks = {
      phase: enter,
      log: (stream: LogStream, text: string) => logs.write(stream, text),
      signal,
    };
    if (cacheUsage !== null && job.cache !== null) {
      const percent = Math.round((cacheUsage.usedBytes * 100) / Math.max(1, cacheUsage.totalBytes));
      await logs.system(
        `cache disk ${percent}% full (${cacheUsage.usedBytes} of ${cacheUsage.totalBytes} bytes)`,
      );
      if (overThreshold(cacheUsage, job.cache.gcThresholdPercent) && engine.prune) {
        await logs.system(
          `cache disk past ${job.cache.gcThresholdPercent}%: pruning ${engine.name} state`,
        );
        await engine.prune(request, hooks);
      }
    }
    if (engine.start) await engine.start(request, hooks);
    throwIfCancelled(signal);
    const result = await engine.build(request, hooks);
    throwIfCancelled(signal);
    phases.finish();
    return {
      type: 'result',
      ok: true,
      imageDigest: result.digest,
      imageRef: result.imageRef,
      phaseSeconds: phases.phaseSeconds(),
      provenance: {
        sourceSha256,
        treeSha256: unpacked.treeSha256,
        lockfiles: findLockfiles(unpacked.entries, context.contextPrefix),
        baseImages: result.baseImages,
        engine: { name: engine.name, version: engineVersion },
      },
    };
  } catch (err) {
    phases.finish();
    const { code, message } = signal.aborted
      ? { code: 'cancelled', message: 'the build was cancelled' }
      : describeFailure(err);
    await logs.system(`build failed: ${code}: ${message}`).catch(() => undefined);
    if (code === 'build_failed' && job.networkMode === 'isolated') {
      // The commonest cause of a failing RUN in isolated mode is a download; say so.
      await logs
        .system(
          'network_mode=isolated: build steps reach nothing but the Kiln registry (no DNS, no proxy); a step that downloads (npm ci, apt-get, pip) needs network_mode=egress',
        )
        .catch(() => undefined);
    }
    return {
      type: 'result',
      ok: false,
      code,
      message,
      logTail: logs.lastLines(),
      phaseSeconds: phases.phaseSeconds(),
    };
  } finally {
    await credentials?.dispose();
  }
}

function throwIfCancelled(signal: AbortSignal): void {
  if (signal.aborted) throw new BuildFailure('cancelled', 'the build was cancelled');
}

/** Maps an error to a build error code (common/errors/build-error-code.ts) and a message. */
export function describeFailure(err: unknown): { code: BuildErrorCode; message: string } {
  if (isBuildFailure(err)) return { code: err.code, message: err.message };
  // The archive policy's codes (SOURCE_*) are the host's 4xx answers; in the guest, where
  // the host already checked the upload, any of them makes the source invalid.
  if (isArchiveError(err)) return { code: 'invalid_source', message: err.message };
  return { code: 'internal', message: err instanceof Error ? err.message : String(err) };
}
