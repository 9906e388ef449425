import type { z } from 'zod';
import {
  agentMessageSchema,
  hostMessageSchema,
  type AgentMessage,
  type HostMessage,
} from './agent-messages.js';

export type ParseResult<T> = { ok: true; message: T } | { ok: false; error: string };

/** Validates a decoded line from the agent. */
export function parseAgentMessage(value: unknown): ParseResult<AgentMessage> {
  return validate(agentMessageSchema, value);
}

/** Validates a decoded line from the host. */
export function parseHostMessage(value: unknown): ParseResult<HostMessage> {
  return validate(hostMessageSchema, value);
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
