import type { Readable } from 'node:stream';
import type { HostMessage } from '../../common/protocol/agent-messages.js';
import { LineFramer } from '../../common/protocol/line-framer.js';
import { parseHostMessage } from '../../common/protocol/parse-message.js';

export interface HostMessageHandlers {
  message(message: HostMessage): void;
  /** A line that was oversized, not JSON or not a valid host message; it was skipped. */
  problem(detail: string): void;
  /** The host side closed (or the stream failed); `partial` when it ended inside a line. */
  end(partial: boolean): void;
}

/**
 * Reads newline-delimited JSON host messages (docs/contracts.md#message-framing) from the channel
 * and hands each valid one to `handlers.message`. Bad lines are reported and skipped; the stream
 * keeps going.
 */
export function readHostMessages(input: Readable, handlers: HostMessageHandlers): void {
  const framer = new LineFramer();
  let ended = false;
  const finish = (partial: boolean): void => {
    if (ended) return;
    ended = true;
    handlers.end(partial);
  };
  input.on('data', (chunk: Buffer) => {
    for (const event of framer.push(chunk)) {
      if (event.kind === 'error') {
        handlers.problem(`${event.reason}: ${event.detail}`);
        continue;
      }
      const parsed = parseHostMessage(event.value);
      if (parsed.ok) handlers.message(parsed.message);
      else handlers.problem(`invalid host message: ${parsed.error}`);
    }
  });
  input.on('end', () => {
    // A line cut off by the end of the stream is reported through `end(partial)` only:
    // the host is gone, so there is nobody to tell about it.
    finish(framer.end().length > 0);
  });
  input.on('error', (err) => {
    handlers.problem(`channel error: ${err.message}`);
    finish(false);
  });
  input.on('close', () => {
    finish(false);
  });
}
