/**
 * The host ↔ agent protocol (docs/contracts.md#agent-protocol): newline-delimited JSON over one
 * byte stream per VM (virtio-serial under QEMU, hybrid vsock under Cloud Hypervisor). Every message
 * has a `type`. This module is the single definition both the daemon (`src/`) and the guest agent
 * (`agent/`) import; it must stay free of Node-only dependencies beyond the standard library.
 */

export const PROTOCOL_VERSION = 1;

/** Largest encoded message, newline included (docs/contracts.md#message-framing). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Vsock port the agent dials on the host (CID 2) under Cloud Hypervisor. */
export const AGENT_VSOCK_PORT = 1024;

/** virtio-serial port name the agent opens under QEMU (`/sys/class/virtio-ports/*\/name`). */
export const AGENT_SERIAL_PORT_NAME = 'kiln.agent';

export type BuildPhase = 'extracting' | 'building' | 'pushing' | 'exporting_cache';
export const BUILD_PHASES: readonly BuildPhase[] = [
  'extracting',
  'building',
  'pushing',
  'exporting_cache',
];

export type LogStream = 'stdout' | 'stderr' | 'system';

// ----- agent → host -----

export interface HelloMessage {
  type: 'hello';
  protocol: number;
  agentVersion: string;
  /** Engines present in the guest image, best first (e.g. ["buildkit", "buildah"]). */
  engines: string[];
}

export interface PhaseMessage {
  type: 'phase';
  phase: BuildPhase;
  /** Milliseconds since the epoch, guest clock. */
  at: number;
}

export interface LogMessage {
  type: 'log';
  stream: LogStream;
  /** UTF-8 text, possibly several lines; at most MAX_LOG_CHUNK_BYTES. */
  data: string;
  at: number;
}

/** Largest `data` the agent puts in one log message (well under MAX_MESSAGE_BYTES). */
export const MAX_LOG_CHUNK_BYTES = 64 * 1024;

export interface Provenance {
  sourceSha256: string;
  /** sha256 over the extracted tree (sorted paths, modes and contents). */
  treeSha256: string;
  /** Lockfiles found in the build context, path → sha256. */
  lockfiles: Record<string, string>;
  /** Base images the engine actually resolved: reference → digest. */
  baseImages: Record<string, string>;
  engine: { name: string; version: string };
}

export interface ResultOkMessage {
  type: 'result';
  ok: true;
  imageDigest: string;
  /** The reference the agent pushed, as the guest saw the registry. */
  imageRef: string;
  /** Seconds per phase, as measured in the guest. */
  phaseSeconds: Partial<Record<BuildPhase, number>>;
  provenance: Provenance;
}

export interface ResultErrorMessage {
  type: 'result';
  ok: false;
  /** A build failure code (see common/errors/build-error-code.ts), e.g. build_failed, push_failed. */
  code: string;
  message: string;
  /** Last lines of the log. */
  logTail: string[];
  phaseSeconds: Partial<Record<BuildPhase, number>>;
}

export type ResultMessage = ResultOkMessage | ResultErrorMessage;

export type AgentMessage = HelloMessage | PhaseMessage | LogMessage | ResultMessage;

// ----- host → agent -----

export interface StartMessage {
  type: 'start';
  /** Registry token for this build (docs/contracts.md#build-tokens); only ever sent here. */
  registryToken: string;
  /** Secret id → value, for `RUN --mount=type=secret,id=…`. */
  secrets: Record<string, string>;
}

export interface CancelMessage {
  type: 'cancel';
  reason: string;
}

export type HostMessage = StartMessage | CancelMessage;
