import type { Context } from 'hono';
import { parseDigest } from './digest.js';
import { OCI_INDEX } from './manifest-document.js';
import { OciError } from './oci-error.js';
import type { RegistryDeps } from './registry-deps.js';

/** Most tags one page may hold, whatever `n` asks. */
const MAX_TAGS_PAGE = 10_000;

/**
 * GET `/v2/<name>/tags/list` (spec "Listing tags"): lexically sorted, `n` and `last`
 * pagination, and a `Link: <…>; rel="next"` header when more follow.
 */
export function listTags(deps: RegistryDeps, c: Context, name: string): Response {
  if (!deps.store.repositoryExists(name)) {
    throw new OciError('NAME_UNKNOWN', 'repository name not known to registry', {
      detail: { name },
    });
  }
  const nText = c.req.query('n');
  const last = c.req.query('last') ?? '';
  let n = MAX_TAGS_PAGE;
  if (nText !== undefined) {
    if (!/^\d+$/.test(nText))
      throw new OciError('UNSUPPORTED', 'n must be a whole number', { status: 400 });
    n = Math.min(Number(nText), MAX_TAGS_PAGE);
  }
  const headers: Record<string, string> = { 'Content-Type': 'application/json' };
  if (n === 0) return new Response(JSON.stringify({ name, tags: [] }), { status: 200, headers });
  const page = deps.store.listTags(name, last, n + 1);
  const tags = page.slice(0, n);
  if (page.length > n) {
    const next = new URLSearchParams({ n: String(n), last: tags[tags.length - 1] ?? '' });
    headers.Link = `</v2/${name}/tags/list?${next.toString()}>; rel="next"`;
  }
  return new Response(JSON.stringify({ name, tags }), { status: 200, headers });
}

/**
 * GET `/v2/<name>/referrers/<digest>` (spec "Listing referrers"): an image index of the
 * manifests whose `subject` is `digest`, optionally filtered by `artifactType` (then
 * `OCI-Filters-Applied: artifactType`). Always 200, even with no referrers.
 */
export function listReferrers(
  deps: RegistryDeps,
  c: Context,
  name: string,
  digestText: string,
): Response {
  const digest = parseDigest(digestText);
  const artifactType = c.req.query('artifactType');
  const headers: Record<string, string> = { 'Content-Type': OCI_INDEX };
  let referrers = deps.store.referrers(name, digest.text);
  if (artifactType !== undefined) {
    referrers = referrers.filter((m) => m.artifactType === artifactType);
    headers['OCI-Filters-Applied'] = 'artifactType';
  }
  const index = {
    schemaVersion: 2,
    mediaType: OCI_INDEX,
    manifests: referrers.map((m) => ({
      mediaType: m.mediaType,
      digest: m.digest,
      size: m.size,
      ...(m.artifactType === null ? {} : { artifactType: m.artifactType }),
      ...(m.annotations === null ? {} : { annotations: m.annotations }),
    })),
  };
  return new Response(JSON.stringify(index), { status: 200, headers });
}
