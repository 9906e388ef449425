import type { Writable } from 'node:stream';
import type { AgentMessage } from '../../common/protocol/agent-messages.js';
import { encodeMessage } from '../../common/protocol/line-framer.js';

/**
 * Writes agent messages to the channel one line at a time, in order, waiting for `drain`
 * whenever the stream's buffer is full: a slow host slows the agent down; nothing is dropped.
 */
export class MessageWriter {
  private tail: Promise<void> = Promise.resolve();
  private failure: Error | null = null;

  constructor(private readonly output: Writable) {}

  /** Queues one message; resolves once the stream accepted it (after `drain` if needed). */
  send(message: AgentMessage): Promise<void> {
    const line = encodeMessage(message);
    const next = this.tail.then(() => this.write(line));
    this.tail = next.catch(() => undefined);
    return next;
  }

  /** Resolves when everything sent so far has been handed to the stream. */
  flush(): Promise<void> {
    return this.tail;
  }

  private write(line: Buffer): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    const out = this.output;
    if (out.destroyed || out.writableEnded) {
      return Promise.reject(new Error('the channel is closed'));
    }
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        cleanup();
        this.failure = err;
        reject(err);
      };
      const onClose = (): void => {
        cleanup();
        reject(new Error('the channel closed while writing'));
      };
      const onDrain = (): void => {
        cleanup();
        resolve();
      };
      const cleanup = (): void => {
        out.off('error', onError);
        out.off('close', onClose);
        out.off('drain', onDrain);
      };
      out.on('error', onError);
      out.on('close', onClose);
      if (out.write(line)) {
        cleanup();
        resolve();
      } else {
        out.on('drain', onDrain);
      }
    });
  }
}
