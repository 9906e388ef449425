import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { resolveEndpoint } from './cli-config.js';
import { EXIT, type ExitCode } from './cli-exit.js';
import type { CliIo } from './cli-io.js';
import { followEvents } from './follow-events.js';
import { KilnClient } from './kiln-client.js';

/**
 * `kiln logs ID [-f]`: the build's log as the engine wrote it. With `-f` it follows the
 * events (resuming after a dropped connection) and ends when the build does; Ctrl-C leaves.
 */
export async function runLogsCommand(
  id: string,
  opts: { follow?: boolean; tail?: number },
  io: CliIo,
): Promise<ExitCode> {
  const client = new KilnClient(await resolveEndpoint(io.env));
  if (!opts.follow) {
    const res = await client.logs(id, opts.tail);
    if (res.body !== null) {
      const decoder = new TextDecoder();
      for await (const chunk of Readable.fromWeb(res.body as NodeWebReadableStream<Uint8Array>)) {
        io.stdout(decoder.decode(chunk as Buffer, { stream: true }));
      }
    }
    return EXIT.ready;
  }
  const stop = new AbortController();
  const remove = io.onInterrupt?.(() => {
    stop.abort();
  });
  try {
    await followEvents({
      client,
      buildId: id,
      signal: stop.signal,
      sleep:
        io.sleep ??
        ((ms) =>
          new Promise<void>((resolve) => {
            setTimeout(resolve, ms);
          })),
      onEvent: (event) => {
        if (event.type === 'log' && typeof event.data.data === 'string') {
          io.stdout(event.data.data);
        }
      },
    });
  } finally {
    remove?.();
  }
  return stop.signal.aborted ? EXIT.cancelled : EXIT.ready;
}
