import { MAX_MESSAGE_BYTES } from './agent-messages.js';

export type FrameEvent =
  | { kind: 'message'; value: unknown }
  | { kind: 'error'; reason: 'oversized' | 'invalid_json' | 'not_an_object'; detail: string };

/**
 * Splits a byte stream into newline-delimited JSON messages (docs/contracts.md#message-framing). A
 * line over the limit is reported once and skipped up to its newline; garbage lines are reported
 * and skipped; nothing is buffered past `maxBytes`. `end()` reports a trailing partial line.
 */
export class LineFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private discarding = false;

  constructor(private readonly maxBytes: number = MAX_MESSAGE_BYTES) {}

  push(data: Buffer): FrameEvent[] {
    const out: FrameEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = data.indexOf(0x0a, start);
      if (nl === -1) {
        const rest = data.subarray(start);
        if (!this.discarding && rest.length > 0) {
          if (this.buffered + rest.length > this.maxBytes) {
            // Skip the rest of this line up to its newline.
            this.discarding = true;
            out.push(this.dropOversized());
          } else {
            this.chunks.push(rest);
            this.buffered += rest.length;
          }
        }
        return out;
      }
      const piece = data.subarray(start, nl);
      start = nl + 1;
      if (this.discarding) {
        this.discarding = false;
        continue;
      }
      if (this.buffered + piece.length + 1 > this.maxBytes) {
        out.push(this.dropOversized());
        continue;
      }
      const line = this.chunks.length === 0 ? piece : Buffer.concat([...this.chunks, piece]);
      this.chunks = [];
      this.buffered = 0;
      const event = decodeLine(line);
      if (event) out.push(event);
    }
  }

  /** Forgets the line buffered so far and reports it as oversized. */
  private dropOversized(): FrameEvent {
    this.chunks = [];
    this.buffered = 0;
    return { kind: 'error', reason: 'oversized', detail: `line over ${this.maxBytes} bytes` };
  }

  /** Called at end of stream: a non-empty unterminated line is an error (early EOF). */
  end(): FrameEvent[] {
    const pending = this.buffered > 0 || this.discarding;
    this.chunks = [];
    this.buffered = 0;
    this.discarding = false;
    return pending
      ? [{ kind: 'error', reason: 'invalid_json', detail: 'stream ended inside a message' }]
      : [];
  }
}

function decodeLine(line: Buffer): FrameEvent | null {
  const text = line.toString('utf8').trim();
  if (text === '') return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { kind: 'error', reason: 'invalid_json', detail: (err as Error).message };
  }
  if (
    value === null ||
    typeof value !== 'object' ||
    Array.isArray(value) ||
    typeof (value as { type?: unknown }).type !== 'string'
  ) {
    return {
      kind: 'error',
      reason: 'not_an_object',
      detail: 'a message must be an object with a string "type"',
    };
  }
  return { kind: 'message', value };
}

/** Encodes one message as a line; throws when it would exceed the limit. */
export function encodeMessage(
  message: { type: string },
  maxBytes: number = MAX_MESSAGE_BYTES,
): Buffer {
  const line = Buffer.from(`${JSON.stringify(message)}\n`, 'utf8');
  if (line.length > maxBytes) {
    throw new RangeError(
      `message of type ${message.type} is ${line.length} bytes, over ${maxBytes}`,
    );
  }
  return line;
}
