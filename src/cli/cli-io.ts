import type { Readable } from 'node:stream';
import type { Clock } from '../../common/time/clock.js';

/**
 * What a CLI run talks to, passed in so tests drive it without a process of their own:
 * `kiln.ts` wires the real process; tests pass buffers, a clock and a way to send Ctrl-C.
 */
export interface CliIo {
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  clock?: Clock;
  /** Directory relative paths start from (default: the process's). */
  cwd?: string;
  /** Standard input (`kiln login`, `kiln secrets set`, `kiln build -f -`). */
  stdin?: Readable & { isTTY?: boolean };
  /** stderr when it is a terminal: the upload progress bar is drawn there. */
  terminal?: NodeJS.WritableStream;
  /** Registers a Ctrl-C (SIGINT) handler; returns what removes it. */
  onInterrupt?: (handler: () => void) => () => void;
  /** Waits `ms` (reconnection back-off); tests pass one that does not sleep. */
  sleep?: (ms: number) => Promise<void>;
}

/** Reads all of standard input as UTF-8. */
export async function readAll(stream: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  }
  return Buffer.concat(chunks).toString('utf8');
}
