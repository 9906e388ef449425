import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import type { Context } from 'hono';

/**
 * How far the node side reads ahead of a web-stream body. With the 16 KiB default every
 * socket chunk would stall the request until the disk write behind it finished.
 */
const WEB_BODY_BUFFER_BYTES = 4 * 1024 * 1024;

/**
 * The request body as a node stream with back-pressure. Under @hono/node-server the
 * IncomingMessage is read directly (its web-stream view is only built on demand, so it was
 * never touched); elsewhere (e.g. `app.request()` in tests) the web stream is adapted with
 * `Readable.fromWeb`. Returns null when there is no body.
 */
export function requestBody(c: Context): Readable | null {
  const env: unknown = c.env;
  const incoming =
    typeof env === 'object' && env !== null && 'incoming' in env
      ? (env as { incoming: IncomingMessage }).incoming
      : undefined;
  if (incoming !== undefined) {
    const length = incoming.headers['content-length'];
    const chunked = incoming.headers['transfer-encoding'] !== undefined;
    if (!chunked && (length === undefined || length === '0')) return null;
    return incoming;
  }
  const body = c.req.raw.body;
  if (body === null) return null;
  return Readable.fromWeb(body as NodeWebReadableStream<Uint8Array>, {
    highWaterMark: WEB_BODY_BUFFER_BYTES,
  });
}

/** Reads a small body (a manifest) whole, refusing more than `limit` bytes. */
export async function readBodyLimited(
  body: Readable | null,
  limit: number,
): Promise<Buffer | 'too_large'> {
  if (body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  let total = 0;
  // Past the limit the rest is read and dropped (bounded memory) so the 413 still reaches
  // the client instead of a reset connection.
  for await (const chunk of body) {
    const buf = chunk as Buffer;
    total += buf.length;
    if (total <= limit) chunks.push(buf);
  }
  return total > limit ? 'too_large' : Buffer.concat(chunks);
}
