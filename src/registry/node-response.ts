import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { RESPONSE_ALREADY_SENT } from '@hono/node-server/utils/response';
import type { Context } from 'hono';

/** The node response under @hono/node-server (`c.env.outgoing`), when there is one. */
function nodeOutgoing(c: Context): ServerResponse | undefined {
  const env: unknown = c.env;
  if (typeof env !== 'object' || env === null || !('outgoing' in env)) return undefined;
  return (env as { outgoing: ServerResponse }).outgoing;
}

/**
 * Streams `body` straight into the node response with `pipeline` (back-pressure, and the file
 * closed when the client goes away), skipping the web-stream adapter that costs blob pulls a
 * large share of their throughput. Returns @hono/node-server's "already sent" marker, or
 * null when the app is not served by @hono/node-server (the caller then answers normally).
 */
export function sendNodeStream(
  c: Context,
  status: number,
  headers: Record<string, string>,
  body: () => Readable,
  onError: (err: unknown) => void,
): Response | null {
  const outgoing = nodeOutgoing(c);
  if (outgoing === undefined || outgoing.headersSent) return null;
  outgoing.writeHead(status, headers);
  pipeline(body(), outgoing).catch(onError);
  return RESPONSE_ALREADY_SENT;
}

/**
 * Like {@link sendNodeStream} for a producer that writes chunks itself (`produce` calls
 * `write` and awaits it; the promise resolves once the socket has taken the chunk, so its
 * memory may be reused). Skips the stream machinery entirely. A client that goes away makes
 * the pending `write` reject; a producer failure destroys the response.
 */
export function sendNodeChunks(
  c: Context,
  status: number,
  headers: Record<string, string>,
  produce: (write: (chunk: Buffer) => Promise<void>) => Promise<void>,
  onError: (err: unknown) => void,
): Response | null {
  const outgoing = nodeOutgoing(c);
  if (outgoing === undefined || outgoing.headersSent) return null;
  outgoing.writeHead(status, headers);
  const write = (chunk: Buffer) =>
    new Promise<void>((resolve, reject) => {
      if (outgoing.destroyed) {
        reject(new Error('the client went away'));
        return;
      }
      const onClose = () => {
        reject(new Error('the client went away'));
      };
      outgoing.once('close', onClose);
      outgoing.write(chunk, (err) => {
        outgoing.off('close', onClose);
        if (err) reject(err);
        else resolve();
      });
    });
  produce(write).then(
    () => {
      outgoing.end();
    },
    (err: unknown) => {
      outgoing.destroy();
      onError(err);
    },
  );
  return RESPONSE_ALREADY_SENT;
}

/**
 * Answers with an empty body and headers that may repeat (one header line per value, which a
 * web `Headers` object cannot express: it joins them with commas). Returns null when the app
 * is not served by @hono/node-server (the caller then answers with joined values).
 */
export function sendNodeEmpty(
  c: Context,
  status: number,
  headers: Record<string, string | string[]>,
): Response | null {
  const outgoing = nodeOutgoing(c);
  if (outgoing === undefined || outgoing.headersSent) return null;
  outgoing.writeHead(status, headers);
  outgoing.end();
  return RESPONSE_ALREADY_SENT;
}

/** True for the marker returned by `sendNodeStream` (its headers must not be touched). */
export function isAlreadySent(res: Response): boolean {
  return res === RESPONSE_ALREADY_SENT;
}
