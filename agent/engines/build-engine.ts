import type { BuildPhase, LogStream } from '../../common/protocol/agent-messages.js';
import type { EngineLayerCompression } from '../../common/protocol/build-job.js';

/** Files the engine reads credentials and registry settings from (memory-backed, 0600). */
export interface EngineCredentials {
  /** containers-auth.json / Docker config.json style `auths` file. */
  authFile: string;
  /** Directory holding `config.json` (Docker CLI layout, for buildctl's DOCKER_CONFIG). */
  dockerConfigDir: string;
  /** containers-registries.conf(5) for Buildah. */
  registriesConf: string;
  /** buildkitd.toml for BuildKit (registry mirrors and plain-HTTP registries). */
  buildkitdToml: string;
  /** Secret id → file holding its value. */
  secretFiles: Record<string, string>;
}

/** Everything an engine needs for one build. */
export interface EngineRequest {
  /** Build context directory. */
  contextDir: string;
  /** Absolute path of the Dockerfile (inside the context or a temp file). */
  dockerfile: string;
  buildArgs: Record<string, string>;
  /** Full references to push, e.g. ["10.0.2.100:5000/acme/web:b_123", "…:latest"]. */
  imageRefs: string[];
  /** Registry cache reference (`<host>/cache/<tenant>/<scope>`), or null. */
  cacheRef: string | null;
  /** Registry host:port as the guest reaches it. */
  registryHost: string;
  /** Whether the guest talks plain HTTP to the registry. */
  registryInsecure: boolean;
  credentials: EngineCredentials;
  /** Scratch directory for the engine's storage and temp files (on the scratch disk). */
  workDir: string;
  /** Memory-backed directory for run state (sockets, locks). */
  runDir: string;
  /**
   * BuildKit only: a Dockerfile frontend image to run (`gateway.v0`), served from the Kiln
   * registry; absent or null uses the built-in frontend. Buildah has one built-in parser.
   */
  frontendImage?: string | null;
  /**
   * How each engine compresses the layers it pushes (build.json `layerCompression`, decided by
   * the host): the engine applies its own entry as it is.
   */
  layerCompression: EngineLayerCompression;
}

/** How an engine reports progress while it runs. */
export interface EngineHooks {
  phase(phase: BuildPhase): Promise<void>;
  /** Resolves once the channel accepted the text (back-pressure). */
  log(stream: LogStream, text: string): Promise<void>;
  /** Aborted on cancel: the engine stops its processes promptly. */
  signal: AbortSignal;
}

export interface EngineResult {
  /** Manifest digest the registry holds for the pushed image. */
  digest: string;
  /** The reference pushed first (with its tag). */
  imageRef: string;
  /** Base image reference → digest actually used. */
  baseImages: Record<string, string>;
}

/**
 * A build engine in the guest (docs/contracts.md#build-engines): builds the context, pushes every
 * reference, exports/imports registry cache, and reports the pushed digest. Failures are a
 * BuildFailure with code "build_failed" or "push_failed".
 */
export interface BuildEngine {
  readonly name: 'buildah' | 'buildkit';
  /** The engine's version string, e.g. "1.28.2". */
  version(): Promise<string>;
  /**
   * Gets the engine ready to build (e.g. starts buildkitd), inside the agent's `engine_start`
   * phase. Absent when the engine needs no start of its own (Buildah runs per build).
   */
  start?(request: EngineRequest, hooks: EngineHooks): Promise<void>;
  build(request: EngineRequest, hooks: EngineHooks): Promise<EngineResult>;
  /**
   * Frees the engine's state under `request.workDir` (images, layers, cache mounts) when a
   * cache disk is past its threshold. Absent when the engine bounds itself (BuildKit's GC
   * limits in buildkitd.toml).
   */
  prune?(request: EngineRequest, hooks: EngineHooks): Promise<void>;
}
