/**
 * The host ↔ agent protocol (docs/contracts.md#agent-protocol): newline-delimited JSON over one
 * byte stream per VM (virtio-serial under QEMU, hybrid vsock under Cloud Hypervisor). Every
 * message has a `type`. Each message is written once, as a zod schema; its TypeScript type is
 * inferred from it, so what the sender may write and what the receiver accepts cannot drift
 * apart. This module is the single definition both the daemon (`src/`) and the guest agent
 * (`agent/`) import; it must stay free of Node-only dependencies beyond the standard library.
 */
import { z } from 'zod';

export const PROTOCOL_VERSION = 1;

/** Largest encoded message, newline included (docs/contracts.md#message-framing). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** Largest `data` the agent puts in one log message (well under MAX_MESSAGE_BYTES). */
export const MAX_LOG_CHUNK_BYTES = 64 * 1024;

/** Vsock port the agent dials on the host (CID 2) under Cloud Hypervisor. */
export const AGENT_VSOCK_PORT = 1024;

/** virtio-serial port name the agent opens under QEMU (`/sys/class/virtio-ports/*\/name`). */
export const AGENT_SERIAL_PORT_NAME = 'kiln.agent';

/**
 * The guest's phases, in the order a build goes through them (docs/contracts.md#timings):
 * verifying and unpacking the source, selecting and starting the engine (credentials, a cache
 * prune, a daemon such as buildkitd), the engine's build, push and cache export, and syncing
 * the cache disk once the engine has exited.
 */
export const BUILD_PHASES = [
  'extracting',
  'engine_start',
  'building',
  'pushing',
  'exporting_cache',
  'syncing_cache',
] as const;
const buildPhase = z.enum(BUILD_PHASES);
export type BuildPhase = z.infer<typeof buildPhase>;

const logStream = z.enum(['stdout', 'stderr', 'system']);
export type LogStream = z.infer<typeof logStream>;

/**
 * Seconds per phase, as measured in the guest. The host cannot vouch for them: it fits them
 * into the window it observed itself (hello to result) and never lets them exceed it.
 */
const phaseSeconds = z.partialRecord(buildPhase, z.number().nonnegative());

// ----- agent → host -----

const helloMessage = z.object({
  type: z.literal('hello'),
  protocol: z.number().int(),
  agentVersion: z.string().max(200),
  /** Engines present in the guest image, best first (e.g. ["buildkit", "buildah"]). */
  engines: z.array(z.string().max(50)).max(10),
});
export type HelloMessage = z.infer<typeof helloMessage>;

const phaseMessage = z.object({
  type: z.literal('phase'),
  phase: buildPhase,
  /** Milliseconds since the epoch, guest clock. */
  at: z.number(),
});
export type PhaseMessage = z.infer<typeof phaseMessage>;

const logMessage = z.object({
  type: z.literal('log'),
  stream: logStream,
  /** UTF-8 text, possibly several lines; at most MAX_LOG_CHUNK_BYTES. */
  data: z.string(),
  at: z.number(),
});
export type LogMessage = z.infer<typeof logMessage>;

const provenance = z.object({
  sourceSha256: z.string(),
  /** sha256 over the extracted tree (sorted paths, modes and contents). */
  treeSha256: z.string(),
  /** Lockfiles found in the build context, path → sha256. */
  lockfiles: z.record(z.string(), z.string()),
  /** Base images the engine actually resolved: reference → digest. */
  baseImages: z.record(z.string(), z.string()),
  engine: z.object({ name: z.string(), version: z.string() }),
});
export type Provenance = z.infer<typeof provenance>;

const resultOkMessage = z.object({
  type: z.literal('result'),
  ok: z.literal(true),
  imageDigest: z.string().regex(/^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$/),
  /** The reference the agent pushed, as the guest saw the registry. */
  imageRef: z.string().max(1000),
  phaseSeconds,
  provenance,
  /**
   * True when the VM had a cache disk and the agent synced and unmounted it after the engine
   * exited: only then may the host commit it. Absent or false otherwise.
   */
  cacheSynced: z.boolean().optional(),
});
export type ResultOkMessage = z.infer<typeof resultOkMessage>;

const resultErrorMessage = z.object({
  type: z.literal('result'),
  ok: z.literal(false),
  /** A build failure code (see common/errors/build-error-code.ts), e.g. build_failed. */
  code: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
  message: z.string().max(10_000),
  /** Last lines of the log. */
  logTail: z.array(z.string()).max(1000),
  phaseSeconds,
});
export type ResultErrorMessage = z.infer<typeof resultErrorMessage>;

export type ResultMessage = ResultOkMessage | ResultErrorMessage;

/** Every message the agent sends. */
export const agentMessageSchema = z.union([
  helloMessage,
  phaseMessage,
  logMessage,
  resultOkMessage,
  resultErrorMessage,
]);
export type AgentMessage = z.infer<typeof agentMessageSchema>;

// ----- host → agent -----

const startMessage = z.object({
  type: z.literal('start'),
  /** Registry token for this build (docs/contracts.md#build-tokens); only ever sent here. */
  registryToken: z.string().min(1),
  /** Secret id → value, for `RUN --mount=type=secret,id=…`. */
  secrets: z.record(z.string(), z.string()),
});
export type StartMessage = z.infer<typeof startMessage>;

const cancelMessage = z.object({ type: z.literal('cancel'), reason: z.string() });
export type CancelMessage = z.infer<typeof cancelMessage>;

/** Every message the host sends. */
export const hostMessageSchema = z.discriminatedUnion('type', [startMessage, cancelMessage]);
export type HostMessage = z.infer<typeof hostMessageSchema>;
