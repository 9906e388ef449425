import type { ServerResponse } from 'node:http';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';

/** Where an SSE stream's bytes go: the client's connection. */
export interface SseSink {
  /**
   * Sends the chunks together (one write to the socket). False when the client has enough
   * waiting: give it no more until the sink's `onDrain`.
   */
  write(chunks: readonly Buffer[]): boolean;
  /** Ends the stream normally. */
  end(): void;
  /** Ends it abruptly (a failure while sending). */
  destroy(): void;
}

export interface SseSinkEvents {
  /** The client took what was waiting: it may be given more. */
  onDrain: () => void;
  /** The client went away (or the stream ended). */
  onClose: () => void;
}

const SSE_HEADERS = {
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache',
  connection: 'keep-alive',
} as const;

/** The node response under @hono/node-server (`c.env.outgoing`), when there is one. */
function nodeResponseOf(c: Context): ServerResponse | undefined {
  const env: unknown = c.env;
  if (typeof env !== 'object' || env === null || !('outgoing' in env)) return undefined;
  const outgoing = (env as { outgoing: ServerResponse }).outgoing;
  return outgoing.headersSent ? undefined : outgoing;
}

/**
 * Opens an SSE response for `c`. Under @hono/node-server it writes straight to the node
 * response (the headers at once; each write corked, so the frames of one write leave in one
 * `writev`; back-pressure from the socket's `drain`), skipping the web-stream adapter whose
 * per-chunk promises cost more than the bytes with a thousand followers. Elsewhere (a bare
 * `app.request()`), a web ReadableStream holding up to `highWaterBytes`. Returns the sink and
 * the Response to return from the handler.
 */
export function openSseSink(
  c: Context,
  highWaterBytes: number,
  events: SseSinkEvents,
): { sink: SseSink; response: Response } {
  const res = nodeResponseOf(c);
  if (res !== undefined) {
    res.writeHead(200, SSE_HEADERS);
    res.flushHeaders();
    res.on('drain', events.onDrain);
    res.once('close', events.onClose);
    const sink: SseSink = {
      write(chunks) {
        if (res.destroyed || res.writableEnded) return false;
        res.cork();
        let ok = true;
        for (const chunk of chunks) ok = res.write(chunk);
        res.uncork();
        return ok;
      },
      end() {
        if (!res.writableEnded) res.end();
      },
      destroy() {
        res.destroy();
      },
    };
    return { sink, response: RESPONSE_ALREADY_SENT };
  }
  let controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  let open = true;
  const body = new ReadableStream<Uint8Array>(
    {
      start(c) {
        controller = c;
      },
      pull() {
        events.onDrain();
      },
      cancel() {
        open = false;
        events.onClose();
      },
    },
    { highWaterMark: highWaterBytes, size: (chunk) => chunk.byteLength },
  );
  const sink: SseSink = {
    write(chunks) {
      if (!open || controller === null) return false;
      for (const chunk of chunks) controller.enqueue(chunk);
      return (controller.desiredSize ?? 0) > 0;
    },
    end() {
      if (!open) return;
      open = false;
      controller?.close();
      events.onClose();
    },
    destroy() {
      if (!open) return;
      open = false;
      controller?.error(new Error('the event stream failed'));
      events.onClose();
    },
  };
  return { sink, response: new Response(body, { status: 200, headers: SSE_HEADERS }) };
}
