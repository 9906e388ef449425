import type { DestinationStream } from 'pino';

/** One pino JSON line as parsed back. */
export interface LogLine {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/** pino's numeric levels. */
export const LOG_LEVEL = { debug: 20, info: 30, warn: 40, error: 50 } as const;

/** A pino destination that keeps every line, parsed, for assertions on what was logged. */
export class CapturedLog implements DestinationStream {
  readonly lines: LogLine[] = [];

  write(line: string): void {
    for (const text of line.split('\n')) {
      if (text.trim() !== '') this.lines.push(JSON.parse(text) as LogLine);
    }
  }

  /** Lines whose message is `msg`. */
  find(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  /** Lines at `error` level or above. */
  errors(): LogLine[] {
    return this.lines.filter((l) => l.level >= LOG_LEVEL.error);
  }
}
