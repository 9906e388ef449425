import type { Context } from 'hono';
import { digestOf, looksLikeDigest, parseDigest } from './digest.js';
import { parseManifest } from './manifest-document.js';
import { sendNodeEmpty } from './node-response.js';
import { OciError } from './oci-error.js';
import type { RegistryDeps } from './registry-deps.js';
import { REGISTRY_HEADERS } from './registry-headers.js';
import type { StoredManifest } from './registry-store.js';
import { isValidTag } from './repository-name.js';
import { readBody } from '../http/request-body.js';

function manifestUnknown(reference: string): OciError {
  return new OciError('MANIFEST_UNKNOWN', 'manifest unknown', { detail: { reference } });
}

function assertTag(tag: string): void {
  if (!isValidTag(tag)) {
    throw new OciError('MANIFEST_INVALID', 'invalid tag', { detail: { tag } });
  }
}

/** Resolves a tag or digest reference to a stored manifest, or MANIFEST_UNKNOWN. */
function resolve(deps: RegistryDeps, name: string, reference: string): StoredManifest {
  let digest: string;
  if (looksLikeDigest(reference)) {
    digest = parseDigest(reference).text;
  } else {
    assertTag(reference);
    const found = deps.store.resolveTag(name, reference);
    if (found === null) throw manifestUnknown(reference);
    digest = found;
  }
  const manifest = deps.store.getManifest(name, digest);
  if (manifest === null) throw manifestUnknown(reference);
  return manifest;
}

/** GET/HEAD `/v2/<name>/manifests/<reference>` (spec "Pulling manifests"). */
export function getManifest(
  deps: RegistryDeps,
  c: Context,
  name: string,
  reference: string,
): Response {
  const manifest = resolve(deps, name, reference);
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
 * PUT `/v2/<name>/manifests/<reference>` (spec "Pushing manifests"): the body is bounded by
 * `maxManifestBytes` (413 above it), must parse as a supported manifest whose blobs and child
 * manifests are already in the repository, and, when pushed by digest, must hash to it.
 * Answers 201 with `Location`, `Docker-Content-Digest`, `OCI-Subject` when it has one, and an
 * `OCI-Tag` for each tag accepted when `?tag=` was given.
 */
export async function putManifest(
  deps: RegistryDeps,
  c: Context,
  name: string,
  reference: string,
): Promise<Response> {
  const body = await readBody(c, deps.config.maxManifestBytes);
  const doc = parseManifest(body, c.req.header('content-type'));

  let digest: string;
  const tags: string[] = [];
  if (looksLikeDigest(reference)) {
    const wanted = parseDigest(reference);
    digest = digestOf(wanted.algorithm, body);
    if (digest !== wanted.text) {
      throw new OciError('DIGEST_INVALID', 'manifest does not match the digest', {
        detail: { digest: wanted.text },
      });
    }
  } else {
    assertTag(reference);
    digest = digestOf('sha256', body);
    tags.push(reference);
  }
  const queryTags = c.req.queries('tag') ?? [];
  for (const tag of queryTags) {
    assertTag(tag);
    tags.push(tag);
  }

  const missingBlobs = doc.blobs.filter((d) => deps.store.linkedBlobSize(name, d) === null);
  // An index entry may name a blob instead of a manifest: BuildKit's registry cache export
  // is an index whose entries are the cache layers and its cache config.
  const missingManifests = doc.manifests.filter(
    (d) => deps.store.getManifest(name, d) === null && deps.store.linkedBlobSize(name, d) === null,
  );
  if (missingBlobs.length > 0 || missingManifests.length > 0) {
    throw new OciError('MANIFEST_BLOB_UNKNOWN', 'manifest references unknown blobs', {
      detail: { blobs: missingBlobs, manifests: missingManifests },
    });
  }

  deps.store.putManifest(
    name,
    {
      digest,
      mediaType: doc.mediaType,
      artifactType: doc.artifactType,
      subjectDigest: doc.subjectDigest,
      annotations: doc.annotations,
      size: body.length,
      content: body,
    },
    tags,
  );
  const headers: Record<string, string> = {
    Location: `/v2/${name}/manifests/${digest}`,
    'Docker-Content-Digest': digest,
    'Content-Length': '0',
  };
  if (doc.subjectDigest !== null) headers['OCI-Subject'] = doc.subjectDigest;
  if (queryTags.length === 0) return new Response(null, { status: 201, headers });
  // Spec "Pushing Manifests with Tags": a push with `?tag=` answers with an OCI-Tag header for
  // each tag it accepted, one header line per tag.
  const accepted = [...new Set(tags)];
  const sent = sendNodeEmpty(c, 201, { ...headers, ...REGISTRY_HEADERS, 'OCI-Tag': accepted });
  if (sent !== null) return sent;
  return new Response(null, {
    status: 201,
    headers: { ...headers, 'OCI-Tag': accepted.join(', ') },
  });
}

/**
 * DELETE `/v2/<name>/manifests/<reference>`: by digest removes the manifest and its tags; by
 * tag removes only the tag (spec "Deleting tags", "Deleting manifests"). 202 either way.
 */
export function deleteManifest(deps: RegistryDeps, name: string, reference: string): Response {
  let deleted: boolean;
  if (looksLikeDigest(reference)) {
    deleted = deps.store.deleteManifest(name, parseDigest(reference).text);
  } else {
    assertTag(reference);
    deleted = deps.store.deleteTag(name, reference);
  }
  if (!deleted) throw manifestUnknown(reference);
  return new Response(null, { status: 202, headers: { 'Content-Length': '0' } });
}
