import type { RegistryAction, ScopeRequest } from './access-scope.js';

/** The endpoints of the distribution spec v1.1 ("Endpoints" table) plus the token endpoint. */
export type RegistryRoute =
  | { kind: 'ping' }
  | { kind: 'token' }
  | { kind: 'uploads'; name: string }
  | { kind: 'upload'; name: string; id: string }
  | { kind: 'blob'; name: string; digest: string }
  | { kind: 'manifest'; name: string; reference: string }
  | { kind: 'tags'; name: string }
  | { kind: 'referrers'; name: string; digest: string };

/**
 * Matches a path below `/v2` (without the prefix). Repository names contain slashes, so the
 * fixed suffixes (`/blobs/uploads/…`, `/manifests/…`, …) are matched from the end.
 */
export function matchRegistryRoute(subPath: string): RegistryRoute | null {
  if (subPath === '' || subPath === '/') return { kind: 'ping' };
  if (subPath === '/token') return { kind: 'token' };
  let m = /^\/(.+)\/blobs\/uploads\/?$/.exec(subPath);
  if (m?.[1]) return { kind: 'uploads', name: m[1] };
  m = /^\/(.+)\/blobs\/uploads\/([A-Za-z0-9-]+)$/.exec(subPath);
  if (m?.[1] && m[2]) return { kind: 'upload', name: m[1], id: m[2] };
  m = /^\/(.+)\/blobs\/([^/]+)$/.exec(subPath);
  if (m?.[1] && m[2]) return { kind: 'blob', name: m[1], digest: m[2] };
  m = /^\/(.+)\/manifests\/([^/]+)$/.exec(subPath);
  if (m?.[1] && m[2]) return { kind: 'manifest', name: m[1], reference: m[2] };
  m = /^\/(.+)\/tags\/list$/.exec(subPath);
  if (m?.[1]) return { kind: 'tags', name: m[1] };
  m = /^\/(.+)\/referrers\/([^/]+)$/.exec(subPath);
  if (m?.[1] && m[2]) return { kind: 'referrers', name: m[1], digest: m[2] };
  return null;
}

/** Methods each route answers (HEAD wherever GET is). */
export const ROUTE_METHODS: Record<RegistryRoute['kind'], readonly string[]> = {
  ping: ['GET', 'HEAD'],
  token: ['GET', 'POST'],
  uploads: ['POST'],
  upload: ['GET', 'PATCH', 'PUT', 'DELETE'],
  blob: ['GET', 'HEAD', 'DELETE'],
  manifest: ['GET', 'HEAD', 'PUT', 'DELETE'],
  tags: ['GET'],
  referrers: ['GET'],
};

/**
 * The scopes a request needs (what the 401 challenge names). `optional` scopes are named in
 * the challenge but their absence does not refuse the request: a mount without pull on the
 * source falls back to a plain upload (spec: "Mounting a blob from another repository").
 */
export function requiredScopes(
  route: RegistryRoute,
  method: string,
  query: URLSearchParams,
): { required: ScopeRequest[]; optional: ScopeRequest[] } {
  const one = (name: string, actions: RegistryAction[]) => ({
    required: [{ name, actions }],
    optional: [] as ScopeRequest[],
  });
  switch (route.kind) {
    case 'ping':
    case 'token':
      return { required: [], optional: [] };
    case 'uploads': {
      const from = query.get('from');
      const base = one(route.name, ['pull', 'push']);
      if (query.get('mount') !== null && from !== null && from !== route.name) {
        base.optional.push({ name: from, actions: ['pull'] });
      }
      return base;
    }
    case 'upload':
      return one(route.name, ['pull', 'push']);
    case 'blob':
      return one(route.name, method === 'DELETE' ? ['delete'] : ['pull']);
    case 'manifest':
      if (method === 'PUT') return one(route.name, ['pull', 'push']);
      return one(route.name, method === 'DELETE' ? ['delete'] : ['pull']);
    case 'tags':
    case 'referrers':
      return one(route.name, ['pull']);
  }
}
