import { MAX_LOG_CHUNK_BYTES, type LogStream } from '../../common/protocol/agent-messages.js';
import type { Clock } from '../../common/time/clock.js';
import type { MessageWriter } from '../protocol/message-writer.js';

/**
 * Turns engine output into `log` messages: chunks of at most MAX_LOG_CHUNK_BYTES split on
 * UTF-8 character boundaries, sent through the MessageWriter (so `write` resolves only once
 * the channel took the bytes: back-pressure, never dropping), and keeps the last lines for an
 * error result.
 */
export class LogSink {
  private readonly tail: string[] = [];
  private partial: Record<LogStream, string> = { stdout: '', stderr: '', system: '' };

  constructor(
    private readonly writer: Pick<MessageWriter, 'send'>,
    private readonly clock: Clock,
    private readonly tailLines = 50,
    private readonly maxChunkBytes = MAX_LOG_CHUNK_BYTES,
  ) {}

  /** Sends `text` as one or more log messages; resolves when the channel accepted them. */
  async write(stream: LogStream, text: string): Promise<void> {
    if (text === '') return;
    this.remember(stream, text);
    for (const chunk of splitUtf8(text, this.maxChunkBytes)) {
      await this.writer.send({ type: 'log', stream, data: chunk, at: this.clock.now().getTime() });
    }
  }

  /** A line from the agent itself (stream "system"). */
  system(line: string): Promise<void> {
    return this.write('system', line.endsWith('\n') ? line : `${line}\n`);
  }

  /** The last lines written, oldest first. */
  lastLines(): string[] {
    const pending = (['stdout', 'stderr', 'system'] as const)
      .map((s) => this.partial[s])
      .filter((p) => p !== '');
    return [...this.tail, ...pending].slice(-this.tailLines);
  }

  private remember(stream: LogStream, text: string): void {
    const lines = (this.partial[stream] + text).split('\n');
    this.partial[stream] = lines.pop() ?? '';
    for (const line of lines) {
      this.tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
      if (this.tail.length > this.tailLines) this.tail.shift();
    }
    if (this.partial[stream].length > 2000) {
      this.tail.push(`${this.partial[stream].slice(0, 2000)}…`);
      if (this.tail.length > this.tailLines) this.tail.shift();
      this.partial[stream] = '';
    }
  }
}

/** Splits text into pieces of at most maxBytes UTF-8 bytes without cutting a character. */
export function splitUtf8(text: string, maxBytes: number): string[] {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return [text];
  const out: string[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = Math.min(start + maxBytes, bytes.length);
    // Back off continuation bytes (10xxxxxx) so a character is never split.
    while (end < bytes.length && end > start && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
    out.push(bytes.subarray(start, end).toString('utf8'));
    start = end;
  }
  return out;
}
