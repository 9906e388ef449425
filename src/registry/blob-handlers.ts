import { Readable } from 'node:stream';
import type { Context } from 'hono';
import { parseRangeHeader } from './byte-range.js';
import { parseDigest } from './digest.js';
import { sendNodeChunks } from './node-response.js';
import { OciError } from './oci-error.js';
import type { RegistryDeps } from './registry-deps.js';
import { REGISTRY_HEADERS } from './registry-headers.js';

function blobUnknown(digest: string): OciError {
  return new OciError('BLOB_UNKNOWN', 'blob unknown to registry', { detail: { digest } });
}

/**
 * GET/HEAD `/v2/<name>/blobs/<digest>` (spec "Pulling blobs"), with single `Range` requests
 * answered 206, or 416 when unsatisfiable. The body is read from disk into two reused buffers
 * and written straight to the node socket (`BlobStore.send`), or streamed through a web stream
 * when not served by @hono/node-server.
 */
export function getBlob(
  deps: RegistryDeps,
  c: Context,
  name: string,
  digestText: string,
): Response {
  const digest = parseDigest(digestText);
  const size = deps.store.linkedBlobSize(name, digest.text);
  if (size === null) throw blobUnknown(digest.text);
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest.text,
    'Accept-Ranges': 'bytes',
    ETag: `"${digest.text}"`,
    'Cache-Control': 'max-age=31536000',
  };
  const range = parseRangeHeader(c.req.header('range'), size);
  if (range === 'unsatisfiable') {
    throw new OciError('SIZE_INVALID', 'requested range not satisfiable', {
      status: 416,
      headers: { 'Content-Range': `bytes */${size}` },
      detail: { size },
    });
  }
  const head = c.req.method === 'HEAD';
  const status = range === null ? 200 : 206;
  if (range === null) {
    headers['Content-Length'] = String(size);
  } else {
    headers['Content-Length'] = String(range.end - range.start + 1);
    headers['Content-Range'] = `bytes ${range.start}-${range.end}/${size}`;
  }
  if (head || size === 0) return new Response(null, { status, headers });
  const sent = sendNodeChunks(
    c,
    status,
    { ...headers, ...REGISTRY_HEADERS },
    (write) => deps.blobs.send(digest, range ?? { start: 0, end: size - 1 }, write),
    (err) => {
      deps.logger.debug({ err, digest: digest.text }, 'registry: blob download ended early');
    },
  );
  if (sent !== null) return sent;
  const body = deps.blobs.read(digest, range ?? undefined);
  return new Response(Readable.toWeb(body) as ReadableStream<Uint8Array>, { status, headers });
}

/** DELETE `/v2/<name>/blobs/<digest>`: unlinks the blob from the repository (202). */
export function deleteBlob(deps: RegistryDeps, name: string, digestText: string): Response {
  const digest = parseDigest(digestText);
  if (!deps.store.unlinkBlob(name, digest.text)) throw blobUnknown(digest.text);
  return new Response(null, { status: 202, headers: { 'Content-Length': '0' } });
}
