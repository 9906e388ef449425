import { Hono, type Context } from 'hono';
import type { Logger } from 'pino';
import { formatScopes, type ScopeRequest } from './access-scope.js';
import { deleteBlob, getBlob } from './blob-handlers.js';
import { listReferrers, listTags } from './listing-handlers.js';
import { deleteManifest, getManifest, putManifest } from './manifest-handlers.js';
import { dispatchMirror } from './mirror/mirror-handlers.js';
import { parseMirrorName } from './mirror/mirror-name.js';
import { isAlreadySent } from './node-response.js';
import { OciError } from './oci-error.js';
import { InvalidCredentialError, type RegistryCredential } from './registry-authenticator.js';
import type { RegistryDeps } from './registry-deps.js';
import { REGISTRY_HEADERS } from './registry-headers.js';
import {
  matchRegistryRoute,
  requiredScopes,
  ROUTE_METHODS,
  type RegistryRoute,
} from './registry-route.js';
import { assertRepositoryName } from './repository-name.js';
import { issueToken } from './token-handler.js';
import {
  cancelUpload,
  completeUpload,
  patchUpload,
  startUpload,
  uploadStatus,
} from './upload-handlers.js';
import { isAppError } from '../errors/app-error.js';
import { isClientAbort } from '../http/client-abort.js';

/** Prefix the daemon mounts the registry under (`app.route('/v2', registry.app)`). */
export const REGISTRY_PREFIX = '/v2';

/**
 * `WWW-Authenticate` for a refused request (Docker token spec "How to authenticate"): the
 * realm follows the Host the client used (a guest reaches the registry through a forward).
 */
function challenge(
  deps: RegistryDeps,
  c: Context,
  scopes: readonly ScopeRequest[],
  error?: 'invalid_token' | 'insufficient_scope',
): string {
  // The Host header is the client's; only a plain host[:port] may go into the quoted realm,
  // anything else gets the configured public URL.
  const sent = c.req.header('host');
  const base =
    sent !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(sent)
      ? `${new URL(c.req.url).protocol}//${sent}`
      : deps.publicUrl();
  let value = `Bearer realm="${base}${REGISTRY_PREFIX}/token",service="${deps.config.service}"`;
  if (scopes.length > 0) value += `,scope="${formatScopes(scopes)}"`;
  if (error !== undefined) value += `,error="${error}"`;
  return value;
}

function unauthorized(
  deps: RegistryDeps,
  c: Context,
  scopes: readonly ScopeRequest[],
  error: 'invalid_token' | 'insufficient_scope' | undefined,
  message: string,
): OciError {
  return new OciError('UNAUTHORIZED', message, {
    headers: { 'WWW-Authenticate': challenge(deps, c, scopes, error) },
    detail: scopes.map((s) => ({ Type: 'repository', Name: s.name, Action: s.actions.join(',') })),
  });
}

async function dispatch(
  deps: RegistryDeps,
  c: Context,
  route: Exclude<RegistryRoute, { kind: 'token' }>,
  credential: RegistryCredential,
): Promise<Response> {
  const res =
    (await dispatchMirror(deps, deps.mirror, c, route, credential.subject)) ??
    (await dispatchStored(deps, c, route, credential));
  if (route.kind === 'manifest') observeManifest(deps, c, route, credential.subject, res);
  return res;
}

/**
 * Records, for a build's token, a manifest the registry served (GET/HEAD 200) or accepted
 * (PUT 201), with the digest the registry itself answered: the host's account of the build's
 * base images and pushed image.
 */
function observeManifest(
  deps: RegistryDeps,
  c: Context,
  route: Extract<RegistryRoute, { kind: 'manifest' }>,
  subject: string,
  res: Response,
): void {
  const digest = res.headers.get('Docker-Content-Digest');
  if (digest === null) return;
  const observation = {
    upstream: parseMirrorName(route.name)?.upstream ?? null,
    repository: route.name,
    reference: route.reference,
    digest,
  };
  const method = c.req.method;
  if ((method === 'GET' || method === 'HEAD') && res.status === 200) {
    deps.buildRecord.served(subject, observation);
  } else if (method === 'PUT' && res.status === 201) {
    deps.buildRecord.pushed(subject, observation);
  }
}

async function dispatchStored(
  deps: RegistryDeps,
  c: Context,
  route: Exclude<RegistryRoute, { kind: 'token' }>,
  credential: RegistryCredential,
): Promise<Response> {
  const method = c.req.method;
  switch (route.kind) {
    case 'ping':
      return c.json({});
    case 'uploads':
      return startUpload(deps, c, route.name, credential);
    case 'upload':
      if (method === 'GET') return uploadStatus(deps, route.name, route.id);
      if (method === 'PATCH') return patchUpload(deps, c, route.name, route.id);
      if (method === 'PUT') return completeUpload(deps, c, route.name, route.id);
      return cancelUpload(deps, route.name, route.id);
    case 'blob':
      if (method === 'DELETE') return deleteBlob(deps, route.name, route.digest);
      return getBlob(deps, c, route.name, route.digest);
    case 'manifest':
      if (method === 'PUT') return putManifest(deps, c, route.name, route.reference);
      if (method === 'DELETE') return deleteManifest(deps, route.name, route.reference);
      return getManifest(deps, c, route.name, route.reference);
    case 'tags':
      return listTags(deps, c, route.name);
    case 'referrers':
      return listReferrers(deps, c, route.name, route.digest);
  }
}

/** Matches, authenticates and authorizes one request, then runs its handler. */
async function handle(deps: RegistryDeps, c: Context): Promise<Response> {
  const path = c.req.path;
  const subPath = path.startsWith(REGISTRY_PREFIX) ? path.slice(REGISTRY_PREFIX.length) : path;
  const route = matchRegistryRoute(subPath);
  if (route === null) throw new OciError('NAME_UNKNOWN', 'no such endpoint', { status: 404 });
  if (!ROUTE_METHODS[route.kind].includes(c.req.method)) {
    throw new OciError('UNSUPPORTED', 'method not allowed on this endpoint', {
      headers: { Allow: ROUTE_METHODS[route.kind].join(', ') },
    });
  }
  if (route.kind === 'token') return issueToken(deps, c);
  if ('name' in route) assertRepositoryName(route.name);

  const { required, optional } = requiredScopes(
    route,
    c.req.method,
    new URL(c.req.url).searchParams,
  );
  const challengeScopes = [...required, ...optional];
  let credential: RegistryCredential | null;
  try {
    credential = await deps.authenticator.authenticate(c.req.header('authorization'));
  } catch (err) {
    if (err instanceof InvalidCredentialError) {
      throw unauthorized(deps, c, challengeScopes, 'invalid_token', err.message);
    }
    throw err;
  }
  if (credential === null) {
    throw unauthorized(deps, c, challengeScopes, undefined, 'authentication required');
  }
  if (!required.every((s) => credential.access.allowsAll(s))) {
    throw unauthorized(
      deps,
      c,
      challengeScopes,
      'insufficient_scope',
      'the credential lacks access to this repository',
    );
  }
  return dispatch(deps, c, route, credential);
}

/**
 * What the registry reads from the app it is mounted in: the API app's per-request logger
 * (request id, method, path), set by its request middleware before any route runs.
 */
export interface RegistryEnv {
  Variables: { logger?: Logger };
}

/**
 * The logger for one request: the mounting app's request logger, so registry lines carry the
 * request id, or the registry's own logger when it is served alone.
 */
function requestLogger(deps: RegistryDeps, c: Context<RegistryEnv>): Logger {
  const parent = c.get('logger');
  return parent === undefined ? deps.logger : parent.child({ component: 'registry' });
}

/**
 * The registry's Hono app, routes relative to `/v2`. Every request is matched, authenticated
 * and authorized here before a handler runs; errors are answered in the OCI error shape, and
 * unexpected ones are logged and hidden behind a generic 500.
 */
export function buildRegistryApp(deps: RegistryDeps): Hono<RegistryEnv> {
  const app = new Hono<RegistryEnv>();

  app.all('*', async (c) => {
    const res = await handle({ ...deps, logger: requestLogger(deps, c) }, c);
    if (isAlreadySent(res)) return res;
    for (const [k, v] of Object.entries(REGISTRY_HEADERS)) res.headers.set(k, v);
    return res;
  });

  app.onError((err, c) => {
    // The shared body reader's limit, in the spec's terms (Distribution answers 413 with
    // SIZE_INVALID as well).
    if (isAppError(err, 'BODY_TOO_LARGE')) {
      err = new OciError('SIZE_INVALID', err.message, { status: 413, detail: err.details ?? null });
    }
    if (!(err instanceof OciError) && isClientAbort(err, c)) {
      requestLogger(deps, c).info(
        { reason: String(err) },
        'registry: client disconnected before its request was complete',
      );
      err = new OciError('BLOB_UPLOAD_INVALID', 'the client disconnected mid-request', {
        cause: err,
      });
    }
    if (err instanceof InvalidCredentialError) {
      err = new OciError('UNAUTHORIZED', err.message, {
        headers: { 'WWW-Authenticate': challenge(deps, c, [], 'invalid_token') },
      });
    }
    if (err instanceof OciError) {
      const headers: Record<string, string> = {
        ...err.headers,
        ...REGISTRY_HEADERS,
        'Content-Type': 'application/json',
      };
      const body = c.req.method === 'HEAD' ? null : JSON.stringify(err.toBody());
      return new Response(body, { status: err.status, headers });
    }
    requestLogger(deps, c).error(
      { err, method: c.req.method, path: c.req.path },
      'registry: request failed',
    );
    const body = new OciError('UNKNOWN', 'internal server error').toBody();
    return new Response(JSON.stringify(body), {
      status: 500,
      headers: { 'Content-Type': 'application/json' },
    });
  });

  return app;
}
