/**
 * The exit codes of the `kiln` command. They are part of its interface (scripts branch on
 * them), so they are spelled once here. They are not HTTP answers: the daemon's error codes
 * stay in the catalog under `src/errors/`; the CLI maps those onto these.
 */
export const EXIT = {
  ready: 0,
  failed: 1,
  usage: 2,
  unreachable: 3,
  cancelled: 130,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/**
 * Ends a command with `exitCode` and a one-line message that says what to do. Commands throw
 * it; `runCli` prints `kiln: <message>` and returns the code.
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
    options: { cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'CliExit';
  }
}

/** A usage error (exit 2). */
export function usage(message: string): CliExit {
  return new CliExit(EXIT.usage, message);
}
