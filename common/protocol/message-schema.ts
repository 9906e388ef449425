import { z } from 'zod';
import {
  BUILD_PHASES,
  type AgentMessage,
  type BuildPhase,
  type HostMessage,
} from './agent-messages.js';

const phase = z.enum(BUILD_PHASES as [BuildPhase, ...BuildPhase[]]);
const phaseSeconds = z.partialRecord(phase, z.number().nonnegative());

const agentMessage = z.union([
  z.object({
    type: z.literal('hello'),
    protocol: z.number().int(),
    agentVersion: z.string().max(200),
    engines: z.array(z.string().max(50)).max(10),
  }),
  z.object({ type: z.literal('phase'), phase, at: z.number() }),
  z.object({
    type: z.literal('log'),
    stream: z.enum(['stdout', 'stderr', 'system']),
    data: z.string(),
    at: z.number(),
  }),
  z.object({
    type: z.literal('result'),
    ok: z.literal(true),
    imageDigest: z.string().regex(/^sha(256:[a-f0-9]{64}|512:[a-f0-9]{128})$/),
    imageRef: z.string().max(1000),
    phaseSeconds,
    provenance: z.object({
      sourceSha256: z.string(),
      treeSha256: z.string(),
      lockfiles: z.record(z.string(), z.string()),
      baseImages: z.record(z.string(), z.string()),
      engine: z.object({ name: z.string(), version: z.string() }),
    }),
  }),
  z.object({
    type: z.literal('result'),
    ok: z.literal(false),
    code: z.string().regex(/^[a-z][a-z0-9_]{0,63}$/),
    message: z.string().max(10_000),
    logTail: z.array(z.string()).max(1000),
    phaseSeconds,
  }),
]);

const hostMessage = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('start'),
    registryToken: z.string().min(1),
    secrets: z.record(z.string(), z.string()),
  }),
  z.object({ type: z.literal('cancel'), reason: z.string() }),
]);

export type ParseResult<T> = { ok: true; message: T } | { ok: false; error: string };

/** Validates a decoded line from the agent. */
export function parseAgentMessage(value: unknown): ParseResult<AgentMessage> {
  return validate<AgentMessage>(agentMessage, value);
}

/** Validates a decoded line from the host. */
export function parseHostMessage(value: unknown): ParseResult<HostMessage> {
  return validate<HostMessage>(hostMessage, value);
}

function validate<T>(schema: z.ZodType<T>, value: unknown): ParseResult<T> {
  const r = schema.safeParse(value);
  return r.success
    ? { ok: true, message: r.data }
    : {
        ok: false,
        error: r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '),
      };
}
