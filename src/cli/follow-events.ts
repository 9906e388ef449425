import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { createParser } from 'eventsource-parser';
import { CliExit, EXIT } from './cli-exit.js';
import { DaemonUnreachable, unreachableExit, type KilnClient } from './kiln-client.js';

/** One stored build event as it came over SSE. */
export interface StreamedEvent {
  id: number;
  type: string;
  data: Record<string, unknown>;
}

export interface FollowOptions {
  client: Pick<KilnClient, 'events' | 'getBuild'>;
  buildId: string;
  /** Aborting stops following (the promise then resolves with what was seen). */
  signal: AbortSignal;
  onEvent: (event: StreamedEvent) => void;
  /** Told before each reconnection, with the id it resumes after. */
  onReconnect?: (lastEventId: number, cause: unknown) => void;
  /** Waits between reconnections (injected so tests do not sleep). */
  sleep: (ms: number) => Promise<void>;
  /** Consecutive failed connections before giving up with exit 3 (default 8). */
  maxFailures?: number;
}

export interface FollowResult {
  lastEventId: number;
  /** The `result` event arrived (false: stopped by the signal, or the build ended earlier). */
  finished: boolean;
}

const TERMINAL = new Set(['ready', 'failed', 'cancelled']);
const BACKOFF_MS = [250, 500, 1000, 2000, 4000];

/**
 * Follows `GET /builds/:id/events?follow=true` until the build's `result` event. When the
 * connection drops it reconnects with `Last-Event-ID` set to the last complete event, so the
 * daemon replays exactly what was missed: an event cut in half never reached the parser (an
 * SSE event counts only once its blank line arrived), and an id at or below the last one is
 * dropped, so no event is shown twice. Heartbeats reset nothing and are not passed on.
 */
export async function followEvents(options: FollowOptions): Promise<FollowResult> {
  const { client, buildId, signal } = options;
  const maxFailures = options.maxFailures ?? 8;
  // Updated from the parser's callback: an object, so the loop re-reads it after each await.
  const st = { lastEventId: 0, finished: false, failures: 0 };
  const parser = createParser({
    onEvent(message) {
      if (message.event === 'heartbeat' || message.id === undefined) return;
      const id = Number(message.id);
      if (!Number.isSafeInteger(id) || id <= st.lastEventId) return;
      st.lastEventId = id;
      st.failures = 0;
      const type = message.event ?? 'message';
      options.onEvent({ id, type, data: JSON.parse(message.data) as Record<string, unknown> });
      if (type === 'result') st.finished = true;
    },
  });
  const isDone = () => st.finished || signal.aborted;
  while (!isDone()) {
    let cause: unknown = null;
    try {
      const res = await client.events(buildId, st.lastEventId, signal);
      parser.reset({ consume: false });
      if (res.body !== null) {
        const body = Readable.fromWeb(res.body as NodeWebReadableStream<Uint8Array>);
        const decoder = new TextDecoder();
        for await (const chunk of body) {
          parser.feed(decoder.decode(chunk as Buffer, { stream: true }));
          if (st.finished) break;
        }
        body.destroy();
      }
    } catch (err) {
      if (signal.aborted) break;
      if (err instanceof CliExit) throw err;
      cause = err;
    }
    if (isDone()) break;
    if (cause === null) {
      // The daemon closed the stream without a result: after the final event it has nothing
      // to replay (we resumed past it), otherwise the connection was cut cleanly.
      const build = await client.getBuild(buildId).catch((err: unknown) => {
        if (err instanceof CliExit) throw err;
        return null;
      });
      if (build && TERMINAL.has(build.status)) break;
      cause = new Error('the event stream ended early');
    }
    st.failures += 1;
    if (st.failures > maxFailures) {
      if (cause instanceof DaemonUnreachable) throw unreachableExit(cause);
      throw new CliExit(
        EXIT.unreachable,
        `lost the daemon's event stream for build ${buildId}: follow it again with \`kiln logs ${buildId} -f\``,
        { cause },
      );
    }
    options.onReconnect?.(st.lastEventId, cause);
    await options.sleep(BACKOFF_MS[Math.min(st.failures - 1, BACKOFF_MS.length - 1)] ?? 4000);
  }
  return { lastEventId: st.lastEventId, finished: st.finished };
}
