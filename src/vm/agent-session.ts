import type { Duplex } from 'node:stream';
import type { AgentMessage, HostMessage } from '../../common/protocol/agent-messages.js';
import { encodeMessage, LineFramer } from '../../common/protocol/line-framer.js';
import { parseAgentMessage } from '../../common/protocol/parse-message.js';

/** What the host side of the agent channel reports, in order. */
export type AgentSessionEvent =
  | { kind: 'message'; message: AgentMessage }
  /** A line that is not valid JSON, not a known message, or over the 1 MiB limit. */
  | { kind: 'protocol_error'; detail: string }
  /** The stream ended or failed; no event follows. */
  | { kind: 'closed'; detail: string };

/**
 * The host side of one agent channel (docs/contracts.md#agent-protocol): frames the byte stream
 * into messages, validates each against the protocol schema, and encodes host messages. Owns the
 * stream: `close()` destroys it.
 */
export class AgentSession {
  private readonly framer = new LineFramer();
  private closed = false;

  constructor(
    private readonly stream: Duplex,
    private readonly onEvent: (event: AgentSessionEvent) => void,
  ) {
    stream.on('data', (chunk: Buffer) => {
      for (const frame of this.framer.push(chunk)) {
        if (this.closed) return;
        if (frame.kind === 'error') {
          this.emit({ kind: 'protocol_error', detail: `${frame.reason}: ${frame.detail}` });
          continue;
        }
        const parsed = parseAgentMessage(frame.value);
        this.emit(
          parsed.ok
            ? { kind: 'message', message: parsed.message }
            : { kind: 'protocol_error', detail: `invalid message: ${parsed.error}` },
        );
      }
    });
    stream.once('end', () => {
      for (const frame of this.framer.end()) {
        if (frame.kind === 'error') {
          this.emit({ kind: 'protocol_error', detail: `${frame.reason}: ${frame.detail}` });
        }
      }
      this.finish('the agent closed the channel');
    });
    stream.once('error', (err) => {
      this.finish(`agent channel error: ${err.message}`);
    });
    stream.once('close', () => {
      this.finish('the agent channel closed');
    });
  }

  /** Sends one message; false when the channel is already gone. */
  send(message: HostMessage): boolean {
    if (this.closed || this.stream.destroyed || !this.stream.writable) return false;
    this.stream.write(encodeMessage(message));
    return true;
  }

  /** Destroys the stream; no further events are emitted. Idempotent. */
  close(): void {
    this.closed = true;
    this.stream.destroy();
  }

  private emit(event: AgentSessionEvent): void {
    if (!this.closed) this.onEvent(event);
  }

  private finish(detail: string): void {
    if (this.closed) return;
    this.emit({ kind: 'closed', detail });
    this.closed = true;
  }
}
