import type { IncomingMessage } from 'node:http';
import { Readable, Transform } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import type { Context } from 'hono';
import { AppError } from '../errors/app-error.js';

/**
 * How far the node side reads ahead of a body. With the 16 KiB default every socket chunk
 * would stall the request until the disk write behind it finished.
 */
const BODY_BUFFER_BYTES = 4 * 1024 * 1024;

function tooLarge(limit: number): AppError {
  return new AppError('BODY_TOO_LARGE', `The request body exceeds its limit of ${limit} bytes.`, {
    details: { limit },
  });
}

function incomingOf(c: Context): IncomingMessage | undefined {
  const env: unknown = c.env;
  return typeof env === 'object' && env !== null && 'incoming' in env
    ? (env as { incoming: IncomingMessage }).incoming
    : undefined;
}

/**
 * The request body as a node stream with back-pressure that never yields more than `limit`
 * bytes, or null when there is none. Every body the daemon reads goes through here:
 *
 * - a `Content-Length` above `limit` throws BODY_TOO_LARGE before a byte is read;
 * - a body without one (chunked) is cut off at its first byte past `limit`: the stream fails
 *   with BODY_TOO_LARGE and the socket is no longer read, so memory stays bounded by what was
 *   already buffered. The HTTP server answers the error and then drops the rest (the node
 *   adapter drains briefly, then closes the connection).
 *
 * Under @hono/node-server the IncomingMessage is read directly (its web-stream view is only
 * built on demand, so it was never touched); elsewhere (`app.request()` in tests) the web
 * stream is adapted with `Readable.fromWeb`.
 */
export function requestBody(c: Context, limit: number): Readable | null {
  const declared = c.req.header('content-length');
  if (declared !== undefined && /^\d+$/.test(declared.trim()) && Number(declared) > limit) {
    throw tooLarge(limit);
  }
  const incoming = incomingOf(c);
  let source: Readable;
  if (incoming !== undefined) {
    const chunked = incoming.headers['transfer-encoding'] !== undefined;
    if (!chunked && (declared === undefined || declared === '0')) return null;
    source = incoming;
  } else {
    const body = c.req.raw.body;
    if (body === null) return null;
    source = Readable.fromWeb(body as NodeWebReadableStream<Uint8Array>, {
      highWaterMark: BODY_BUFFER_BYTES,
    });
  }
  return limitStream(source, limit);
}

/**
 * `source` through a byte counter that fails with BODY_TOO_LARGE past `limit`. On overflow
 * the source is unpiped and paused, not destroyed: destroying the request would reset the
 * socket before the 413 could be written.
 */
function limitStream(source: Readable, limit: number): Readable {
  let seen = 0;
  const counter = new Transform({
    highWaterMark: BODY_BUFFER_BYTES,
    transform(chunk: Buffer, _enc, cb) {
      seen += chunk.length;
      if (seen > limit) {
        source.unpipe(counter);
        source.pause();
        cb(tooLarge(limit));
        return;
      }
      cb(null, chunk);
    },
  });
  // The limit may be hit before the consumer attaches (a handler awaiting something first);
  // the failure stays stored on the stream for the pipeline or loop that reads it.
  counter.on('error', () => undefined);
  source.on('error', (err) => counter.destroy(err));
  // A client that goes away mid-body ends the request early: report it as an abort, not as a
  // complete (short) body.
  source.on('aborted', () => counter.destroy(new AppError('UPLOAD_ABORTED')));
  source.pipe(counter);
  counter.on('close', () => {
    if (!source.readableEnded) source.unpipe(counter);
  });
  return counter;
}

/**
 * The request body as a node stream, unlimited and unwrapped, or null when there is none: the
 * IncomingMessage itself under @hono/node-server (no web-stream round trip, which costs a
 * large upload much of its throughput), else the web body adapted with `Readable.fromWeb`.
 * For a caller that enforces its own limits as it parses (the multipart build upload).
 */
export function rawRequestBody(c: Context): Readable | null {
  const incoming = incomingOf(c);
  if (incoming !== undefined) return incoming;
  const body = c.req.raw.body;
  if (body === null) return null;
  return Readable.fromWeb(body as NodeWebReadableStream<Uint8Array>, {
    highWaterMark: BODY_BUFFER_BYTES,
  });
}

/** Reads a small body (JSON, a form, a manifest) whole, at most `limit` bytes. */
export async function readBody(c: Context, limit: number): Promise<Buffer> {
  const body = requestBody(c, limit);
  if (body === null) return Buffer.alloc(0);
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
