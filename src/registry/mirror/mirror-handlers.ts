import { Readable } from 'node:stream';
import type { Context } from 'hono';
import type { BaseImageFailure } from './base-image-failures.js';
import { isMirrorNamespace, parseMirrorName, type MirrorName } from './mirror-name.js';
import type { MirroredBlob, RegistryMirror } from './registry-mirror.js';
import { UpstreamError } from './upstream-error.js';
import { getBlob } from '../blob-handlers.js';
import { looksLikeDigest, parseDigest } from '../digest.js';
import { sendNodeChunks } from '../node-response.js';
import { OciError } from '../oci-error.js';
import type { RegistryDeps } from '../registry-deps.js';
import { REGISTRY_HEADERS } from '../registry-headers.js';
import type { RegistryRoute } from '../registry-route.js';
import { isValidTag } from '../repository-name.js';

/**
 * Answers a request for the mirror namespace, or returns null for every other repository (and
 * for the listings, which serve what is stored like any repository). Only pulls are served:
 * pushes, uploads and deletes are refused, the namespace is filled from upstreams alone. A
 * pull that cannot be served is recorded against `subject` (the credential's), so a build that
 * fails on it can say which base image was unavailable and why.
 */
export async function dispatchMirror(
  deps: RegistryDeps,
  mirror: RegistryMirror,
  c: Context,
  route: RegistryRoute,
  subject: string,
): Promise<Response | null> {
  if (!('name' in route) || !isMirrorNamespace(route.name)) return null;
  const method = c.req.method;
  const read = method === 'GET' || method === 'HEAD';
  if (!read || route.kind === 'uploads' || route.kind === 'upload') {
    throw new OciError('DENIED', 'the mirror namespace is read-only: it is filled from upstreams', {
      detail: { name: route.name },
    });
  }
  if (route.kind !== 'manifest' && route.kind !== 'blob') return null;
  const name = parseMirrorName(route.name);
  if (name === null) {
    throw new OciError(
      'NAME_UNKNOWN',
      'a mirrored repository is named mirror/<upstream>/<repository>',
      {
        detail: { name: route.name },
      },
    );
  }
  try {
    if (route.kind === 'manifest') return await mirrorManifest(mirror, c, name, route.reference);
    return await mirrorBlob(deps, mirror, c, name, route.digest, subject);
  } catch (err) {
    const reference = route.kind === 'manifest' ? route.reference : route.digest;
    const failure = baseImageFailure(err, name, route.kind, reference);
    if (failure !== null) deps.baseImageFailures.record(subject, failure);
    if (err instanceof UpstreamError) throw err.toOciError(route.kind);
    throw err;
  }
}

/** What a failed mirror pull tells a build: the image, the cause, the mirror's message. */
function baseImageFailure(
  err: unknown,
  name: MirrorName,
  kind: 'manifest' | 'blob',
  reference: string,
): BaseImageFailure | null {
  const image =
    kind === 'blob'
      ? `${name.upstream}/${name.repository}`
      : `${name.upstream}/${name.repository}${looksLikeDigest(reference) ? '@' : ':'}${reference}`;
  if (err instanceof UpstreamError) return { image, cause: err.failure, message: err.message };
  if (err instanceof OciError && err.code === 'NAME_UNKNOWN') {
    return { image, cause: 'not_configured', message: err.message };
  }
  return null;
}

/** GET/HEAD a manifest of a mirrored repository (tag or digest), from the store or upstream. */
async function mirrorManifest(
  mirror: RegistryMirror,
  c: Context,
  name: MirrorName,
  reference: string,
): Promise<Response> {
  let ref = reference;
  if (looksLikeDigest(reference)) ref = parseDigest(reference).text;
  else if (!isValidTag(reference)) {
    throw new OciError('MANIFEST_INVALID', 'invalid tag', { detail: { tag: reference } });
  }
  const served = await mirror.manifest(name, ref);
  const { manifest } = served;
  // A client that GETs an image manifest asks for its blobs next: start fetching them.
  if (c.req.method === 'GET') mirror.prefetch(name, served);
  const headers = {
    'Content-Type': manifest.mediaType,
    'Content-Length': String(manifest.size),
    'Docker-Content-Digest': manifest.digest,
    ETag: `"${manifest.digest}"`,
  };
  if (c.req.method === 'HEAD') return new Response(null, { status: 200, headers });
  return new Response(new Uint8Array(manifest.content), { status: 200, headers });
}

/**
 * GET/HEAD a blob of a mirrored repository. A stored blob is served like any other (ranges
 * included). One being downloaded is streamed as it arrives; a HEAD, or a Range request,
 * waits for the download to be verified and stored first (so a client resuming a cut
 * response with a Range learns why it was cut). A failed download is recorded against
 * `subject` like a refused request.
 */
async function mirrorBlob(
  deps: RegistryDeps,
  mirror: RegistryMirror,
  c: Context,
  name: MirrorName,
  digestText: string,
  subject: string,
): Promise<Response> {
  const digest = parseDigest(digestText);
  const found: MirroredBlob = await mirror.blob(name, digest);
  if (found.kind === 'stored') return getBlob(deps, c, found.repository, digest.text);
  const { download } = found;
  // A download that fails once its response has begun (a digest mismatch found at the end, a
  // broken upstream) can only cut the response short; the build is told why all the same.
  download.done.catch((err: unknown) => {
    const failure = baseImageFailure(err, name, 'blob', digest.text);
    if (failure !== null) deps.baseImageFailures.record(subject, failure);
  });
  const follower =
    c.req.method === 'HEAD' || c.req.header('range') !== undefined ? null : download.follow();
  if (follower === null) {
    await download.done;
    return getBlob(deps, c, name.local, digest.text);
  }
  const headers: Record<string, string> = {
    'Content-Type': 'application/octet-stream',
    'Docker-Content-Digest': digest.text,
    ETag: `"${digest.text}"`,
  };
  if (download.size !== null) headers['Content-Length'] = String(download.size);
  const onError = (err: unknown) => {
    deps.logger.debug({ err, digest: digest.text }, 'mirror: blob response ended early');
  };
  // Under the node server the chunks go straight to the socket, no stream in between.
  const sent = sendNodeChunks(
    c,
    200,
    { ...headers, ...REGISTRY_HEADERS },
    (write) => follower.send(write),
    onError,
  );
  if (sent !== null) return sent;
  return new Response(Readable.toWeb(follower.stream()) as ReadableStream<Uint8Array>, {
    status: 200,
    headers,
  });
}
