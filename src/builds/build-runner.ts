import type { BuildLogStream } from './build-event.js';
import type { HostPhase } from './build-timeline.js';
import type { Build } from './build.js';
import type { BuildErrorCode } from '../../common/errors/build-error-code.js';
import type { BuildPhase, Provenance } from '../../common/protocol/agent-messages.js';
import type { EgressSummary } from '../egress/egress-summary.js';

/** Why a run was aborted; the manager sets it as the AbortSignal's reason. */
export type AbortReason =
  { kind: 'cancel' } | { kind: 'timeout'; seconds: number } | { kind: 'shutdown' };

/** Where a runner reports what happens during one build. Calls are synchronous and cheap. */
export interface BuildRunSink {
  /** The VM is starting (status → booting) or the agent started building (→ building) or pushing. */
  status(status: 'booting' | 'building' | 'pushing'): void;
  phase(phase: BuildPhase): void;
  /** Guest output, or (stream `network`) one line per connection the egress proxy refused. */
  log(stream: BuildLogStream, data: string, at: Date): void;
  /**
   * A host phase of the run began at `at` (docs/contracts.md#timings): `vm_start` as the VMM
   * is asked to start, `boot` once its process runs, `agent` at the agent's hello, `teardown`
   * when the outcome is decided (the VM and its files then go away before run() resolves).
   */
  mark(phase: Extract<HostPhase, 'vm_start' | 'boot' | 'agent' | 'teardown'>, at: Date): void;
}

export interface RunInput {
  build: Build;
  /** The build's registry token (docs/contracts.md#build-tokens); sent over the channel only. */
  registryToken: string;
  /** Secret id → value for the secrets the build asked for. */
  secrets: Record<string, string>;
}

/** What a run measured, however it ended. */
interface RunTrace {
  /** Last lines of the build's log (plus the VM console when the agent never spoke). */
  logTail: string[];
  /** Seconds per guest phase, as the agent reported them (or as its phase messages arrived). */
  phaseSeconds: Partial<Record<BuildPhase, number>>;
  /** An `egress` build's traffic through its proxy; absent in isolated mode. */
  egress?: EgressSummary;
}

export type RunOutcome =
  | {
      ok: true;
      imageDigest: string;
      /** Repository and tag pushed, relative to the registry (e.g. "acme/web:b_…"). */
      pushedRef: string;
      provenance: Provenance;
      phaseSeconds: Partial<Record<BuildPhase, number>>;
      /**
       * Present when the run's cache fork may become its scope's committed disk: the manager
       * calls it once the build is stored `ready`, so a crash before that commits nothing.
       */
      commitCache?: () => Promise<boolean>;
      egress?: EgressSummary;
    }
  | ({ ok: false; code: BuildErrorCode; message: string } & RunTrace)
  /**
   * The run stopped because its signal aborted (or the runner is closing). The runner names
   * no failure: whoever aborted knows why and turns the reason into one.
   */
  | ({ ok: false; aborted: true } & RunTrace);

/** What a runner found and cleaned up from a previous daemon process. */
export interface RecoveryReport {
  killedProcesses: number;
  removedPaths: number;
}

/**
 * Runs one build to its end in an isolated environment (a microVM). The port between the
 * build lifecycle and the VM world.
 */
export interface BuildRunner {
  /**
   * Runs the build. Resolves (never rejects for build-level failures) only once everything
   * the run created — VM process, sockets, volumes — is gone. When `signal` aborts before the
   * run decided its outcome, the VM is killed and the outcome is `{ ok: false, aborted: true }`.
   */
  run(input: RunInput, sink: BuildRunSink, signal: AbortSignal): Promise<RunOutcome>;
  /**
   * Called once at start, before anything is queued: kills VM processes and removes volumes
   * that a crashed daemon left behind (only what this runner itself recorded starting).
   */
  recover(): Promise<RecoveryReport>;
  close(): Promise<void>;
}
