import type { Readable } from 'node:stream';
import type { Context } from 'hono';
import { parseContentRange } from './byte-range.js';
import { parseDigest, tryParseDigest } from './digest.js';
import { OciError } from './oci-error.js';
import type { RegistryCredential } from './registry-authenticator.js';
import type { RegistryDeps } from './registry-deps.js';
import type { UploadSession } from './registry-store.js';
import { isValidRepositoryName } from './repository-name.js';
import { rangeHeaders } from './upload-sessions.js';
import { requestBody } from '../http/request-body.js';

function uploadLocation(name: string, id: string): string {
  return `/v2/${name}/blobs/uploads/${id}`;
}

function sessionHeaders(name: string, session: UploadSession): Record<string, string> {
  return {
    Location: uploadLocation(name, session.id),
    'Docker-Upload-UUID': session.id,
    ...rangeHeaders(session),
    'Content-Length': '0',
  };
}

function created(name: string, digest: string): Response {
  return new Response(null, {
    status: 201,
    headers: {
      Location: `/v2/${name}/blobs/${digest}`,
      'Docker-Content-Digest': digest,
      'Content-Length': '0',
    },
  });
}

function contentRange(c: Context) {
  const header = c.req.header('content-range');
  if (header === undefined) return null;
  const range = parseContentRange(header);
  if (range === null) {
    throw new OciError('BLOB_UPLOAD_INVALID', 'malformed Content-Range', {
      status: 416,
      detail: { header },
    });
  }
  return range;
}

/**
 * POST `/v2/<name>/blobs/uploads/` (spec "Pushing blobs"): a monolithic upload when `digest`
 * is given, a cross-repository mount with `mount`+`from` (201 when the credential may pull
 * the source and the blob is there, else a new session, 202), or a new session (202).
 */
export async function startUpload(
  deps: RegistryDeps,
  c: Context,
  name: string,
  credential: RegistryCredential,
): Promise<Response> {
  const mount = c.req.query('mount');
  const from = c.req.query('from');
  if (mount !== undefined && from !== undefined) {
    const digest = tryParseDigest(mount);
    if (digest !== null && from !== name) {
      if (
        isValidRepositoryName(from) &&
        credential.access.allows(from, 'pull') &&
        deps.store.linkedBlobSize(from, digest.text) !== null
      ) {
        deps.store.linkBlob(name, digest.text);
        return created(name, digest.text);
      }
    } else if (digest !== null && deps.store.linkedBlobSize(name, digest.text) !== null) {
      return created(name, digest.text);
    }
  }
  const digestParam = c.req.query('digest');
  const body = requestBody(c, deps.config.maxBlobBytes);
  if (digestParam !== undefined) {
    const digest = parseDigest(digestParam);
    await deps.uploads.uploadWhole(name, digest, body);
    return created(name, digest.text);
  }
  if (body !== null) body.resume();
  const session = await deps.uploads.start(name);
  return new Response(null, { status: 202, headers: sessionHeaders(name, session) });
}

/** A chunk's body, bounded by what the session may still take before it reaches maxBlobBytes. */
function chunkBody(deps: RegistryDeps, c: Context, name: string, id: string): Readable | null {
  const { size } = deps.uploads.get(name, id);
  return requestBody(c, Math.max(0, deps.config.maxBlobBytes - size));
}

/** GET `/v2/<name>/blobs/uploads/<id>`: progress of a session (204 with `Range`). */
export function uploadStatus(deps: RegistryDeps, name: string, id: string): Response {
  const session = deps.uploads.get(name, id);
  return new Response(null, { status: 204, headers: sessionHeaders(name, session) });
}

/** PATCH: a chunk with `Content-Range`, or a streamed body without it (buildah, skopeo). */
export async function patchUpload(
  deps: RegistryDeps,
  c: Context,
  name: string,
  id: string,
): Promise<Response> {
  const range = contentRange(c);
  const body = chunkBody(deps, c, name, id);
  const session =
    body === null ? deps.uploads.get(name, id) : await deps.uploads.append(name, id, body, range);
  return new Response(null, { status: 202, headers: sessionHeaders(name, session) });
}

/**
 * PUT `…/uploads/<id>?digest=`: an optional last chunk, held to its `Content-Range` as a
 * PATCH chunk is (416 and the session unchanged when it does not fit), then the digest
 * check (201).
 */
export async function completeUpload(
  deps: RegistryDeps,
  c: Context,
  name: string,
  id: string,
): Promise<Response> {
  const digestParam = c.req.query('digest');
  if (digestParam === undefined) {
    throw new OciError('DIGEST_INVALID', 'the digest query parameter is required');
  }
  const digest = parseDigest(digestParam);
  const range = contentRange(c);
  await deps.uploads.complete(name, id, digest, chunkBody(deps, c, name, id), range);
  return created(name, digest.text);
}

/** DELETE `…/uploads/<id>`: cancels the session and removes its bytes (204). */
export async function cancelUpload(
  deps: RegistryDeps,
  name: string,
  id: string,
): Promise<Response> {
  await deps.uploads.cancel(name, id);
  return new Response(null, { status: 204 });
}
