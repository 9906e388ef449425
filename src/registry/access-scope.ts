import { BASE_IMAGE_NAMESPACE, MIRROR_NAMESPACE } from '../auth/scopes.js';

/** An action on a repository (Docker token spec "Requesting a Token", `scope`). */
export type RegistryAction = 'pull' | 'push' | 'delete';

/** One entry of a token's `access` claim (Docker token spec, "Token Response Fields"). */
export interface AccessEntry {
  type: 'repository';
  /** A repository name, or a namespace glob: `library/*` or `mirror/*` (the only ones allowed). */
  name: string;
  actions: string[];
}

/** What one request needs: actions on a repository. */
export interface ScopeRequest {
  name: string;
  actions: RegistryAction[];
}

/** The base-image glob every valid credential may pull from. */
export const BASE_IMAGE_GLOB = `${BASE_IMAGE_NAMESPACE}/*`;

/** The pull-through mirror's glob: builds and API tokens with `registry:pull` may pull it. */
export const MIRROR_GLOB = `${MIRROR_NAMESPACE}/*`;

/** The only globs a registry token's access claim may carry. */
const TOKEN_GLOBS: ReadonlySet<string> = new Set([BASE_IMAGE_GLOB, MIRROR_GLOB]);

/** Renders scopes for a WWW-Authenticate challenge: `repository:<name>:<a,b>` joined by spaces. */
export function formatScopes(scopes: readonly ScopeRequest[]): string {
  return scopes.map((s) => `repository:${s.name}:${s.actions.join(',')}`).join(' ');
}

/**
 * Parses `scope` query values from the token endpoint. Each value may hold several
 * space-separated scopes; names may contain `:` only for a registry host (unsupported here),
 * so the name is everything between the first and the last colon. Non-repository scopes are
 * ignored (nothing grants them).
 */
export function parseScopeParams(values: readonly string[]): ScopeRequest[] {
  const merged = new Map<string, Set<RegistryAction>>();
  for (const value of values) {
    for (const part of value.split(' ')) {
      if (part === '') continue;
      const first = part.indexOf(':');
      const last = part.lastIndexOf(':');
      if (first < 0 || last <= first) continue;
      const type = part.slice(0, first);
      if (type !== 'repository') continue;
      const name = part.slice(first + 1, last);
      const actions = part.slice(last + 1).split(',');
      const set = merged.get(name) ?? new Set<RegistryAction>();
      for (const a of actions) {
        if (a === 'pull' || a === 'push' || a === 'delete') set.add(a);
        else if (a === '*') {
          set.add('pull');
          set.add('push');
          set.add('delete');
        }
      }
      merged.set(name, set);
    }
  }
  return [...merged].map(([name, actions]) => ({ name, actions: [...actions] }));
}

/** True when `pattern` (a name or a `<ns>/*` glob) covers repository `name`. */
function nameMatches(pattern: string, name: string): boolean {
  if (pattern.endsWith('/*')) return name.startsWith(pattern.slice(0, -1));
  return pattern === name;
}

/** True when an entry's actions cover `action` (push implies the right to delete). */
function actionsAllow(actions: readonly string[], action: RegistryAction): boolean {
  if (actions.includes(action) || actions.includes('*')) return true;
  return action === 'delete' && actions.includes('push');
}

/**
 * The access a credential carries. Pull on the base-image namespace is always allowed
 * (docs/contracts.md#registry-access). Globs (`<ns>/*`) are honoured as given; `fromTokenClaim`
 * drops the ones a registry token may not carry.
 */
export class Access {
  readonly entries: readonly AccessEntry[];

  constructor(entries: readonly AccessEntry[]) {
    this.entries = entries;
  }

  /** A registry token's `access` claim: the only globs it may hold are TOKEN_GLOBS. */
  static fromTokenClaim(entries: readonly AccessEntry[]): Access {
    return new Access(entries.filter((e) => !e.name.includes('*') || TOKEN_GLOBS.has(e.name)));
  }

  allows(name: string, action: RegistryAction): boolean {
    if (action === 'pull' && nameMatches(BASE_IMAGE_GLOB, name)) return true;
    return this.entries.some((e) => nameMatches(e.name, name) && actionsAllow(e.actions, action));
  }

  allowsAll(scope: ScopeRequest): boolean {
    return scope.actions.every((a) => this.allows(scope.name, a));
  }

  /** What a token endpoint may grant: requested ∩ allowed, one entry per repository. */
  intersect(requested: readonly ScopeRequest[]): AccessEntry[] {
    const out: AccessEntry[] = [];
    for (const r of requested) {
      const actions = r.actions.filter((a) => this.allows(r.name, a));
      if (actions.length > 0) out.push({ type: 'repository', name: r.name, actions });
    }
    return out;
  }
}
