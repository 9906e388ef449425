import type { Context } from 'hono';
import { parseScopeParams } from './access-scope.js';
import { OciError } from './oci-error.js';
import type { RegistryCredential } from './registry-authenticator.js';
import type { RegistryDeps } from './registry-deps.js';
import { assertRepositoryName } from './repository-name.js';
import { readBody } from '../http/request-body.js';

/**
 * `/v2/token` (Docker token spec; OAuth2 password grant as BuildKit and containerd send it):
 * GET with Basic credentials and repeated or space-separated `scope`s, or POST
 * `grant_type=password` with `username`/`password`/`scope` in a form body. Grants the
 * intersection of what was asked and what the credential allows; the token lives
 * `tokenTtlSeconds`, never longer than the credential it came from. Every requested name
 * must be a repository name (no globs, no `..`): one that is not answers NAME_INVALID and
 * grants nothing, rather than being signed into the token and ignored later.
 */
export async function issueToken(deps: RegistryDeps, c: Context): Promise<Response> {
  let credential: RegistryCredential | null;
  let scopeValues: string[];
  if (c.req.method === 'POST') {
    // Unauthenticated: the form is bounded while it streams, before anything else happens.
    const form = new URLSearchParams(
      (await readBody(c, deps.config.maxTokenBodyBytes)).toString('utf8'),
    );
    if (form.get('grant_type') !== 'password') {
      return c.json({ error: 'unsupported_grant_type' }, 400);
    }
    credential = await deps.authenticator.fromPassword(form.get('password') ?? '');
    scopeValues = form.getAll('scope');
  } else {
    credential = await deps.authenticator.authenticate(c.req.header('authorization'));
    scopeValues = c.req.queries('scope') ?? [];
  }
  if (credential === null) {
    throw new OciError('UNAUTHORIZED', 'credentials are required', {
      headers: { 'WWW-Authenticate': `Basic realm="${deps.config.service}"` },
    });
  }
  const requested = parseScopeParams(scopeValues);
  for (const scope of requested) assertRepositoryName(scope.name);
  const access = credential.access.intersect(requested);
  const nowSeconds = Math.floor(deps.clock.now().getTime() / 1000);
  let lifetime = deps.config.tokenTtlSeconds;
  if (credential.expiresAt !== null) {
    lifetime = Math.min(lifetime, credential.expiresAt - nowSeconds);
  }
  // A build's attempt travels into the minted token, so it dies with that run as well.
  const { token, issuedAt, expiresIn } = await deps.tokens.sign(
    credential.subject,
    access,
    lifetime,
    credential.attempt,
  );
  return c.json({
    token,
    access_token: token,
    expires_in: expiresIn,
    issued_at: issuedAt.toISOString(),
  });
}
