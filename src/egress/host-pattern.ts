import { normalizeHost } from './normalize-host.js';

/**
 * One entry of an allowlist: `*` (every host), an exact host (a DNS name or an IP literal,
 * normalised), or `*.suffix` (every name below `suffix`, not `suffix` itself — like a TLS
 * wildcard, but across any number of labels).
 */
export type HostPattern =
  | { readonly kind: 'any' }
  | { readonly kind: 'exact'; readonly host: string }
  | { readonly kind: 'suffix'; readonly suffix: string };

/** Parses one pattern; undefined when it is not `*`, a valid host or `*.` + a valid name. */
export function parseHostPattern(text: string): HostPattern | undefined {
  const trimmed = text.trim();
  if (trimmed === '*') return { kind: 'any' };
  if (trimmed.startsWith('*.')) {
    const suffix = normalizeHost(trimmed.slice(2));
    return suffix?.kind === 'name' ? { kind: 'suffix', suffix: suffix.host } : undefined;
  }
  const host = normalizeHost(trimmed);
  return host === undefined ? undefined : { kind: 'exact', host: host.host };
}

/** The pattern as written in configuration and requests, normalised. */
export function formatHostPattern(pattern: HostPattern): string {
  switch (pattern.kind) {
    case 'any':
      return '*';
    case 'exact':
      return pattern.host;
    case 'suffix':
      return `*.${pattern.suffix}`;
  }
}

/** Whether `host` (normalised, see normalizeHost) is admitted by `pattern`. */
export function patternAdmits(pattern: HostPattern, host: string): boolean {
  switch (pattern.kind) {
    case 'any':
      return true;
    case 'exact':
      return pattern.host === host;
    case 'suffix':
      return isBelow(host, pattern.suffix);
  }
}

/**
 * Whether every host `inner` admits is also admitted by `outer`: how a build's list is held
 * within the operator's ceiling. Decided on the patterns, not on samples: `*` covers all;
 * `*.a.com` covers `x.a.com`, `*.x.a.com` and itself; an exact host covers only itself.
 */
export function patternCovers(outer: HostPattern, inner: HostPattern): boolean {
  switch (outer.kind) {
    case 'any':
      return true;
    case 'exact':
      return inner.kind === 'exact' && inner.host === outer.host;
    case 'suffix':
      switch (inner.kind) {
        case 'any':
          return false;
        case 'exact':
          return isBelow(inner.host, outer.suffix);
        case 'suffix':
          return inner.suffix === outer.suffix || isBelow(inner.suffix, outer.suffix);
      }
  }
}

function isBelow(name: string, suffix: string): boolean {
  return name.endsWith(`.${suffix}`);
}
