import ipaddr from 'ipaddr.js';
import { z } from 'zod';
import { envInt } from './env-schema.js';
import { HostAllowlist } from '../egress/host-allowlist.js';
import { parseConnectTarget } from '../egress/proxy-target.js';

/**
 * The operator's egress settings: what the filtering proxy lets a build in `egress` mode
 * reach, and the per-build limits.
 */
export interface EgressConfig {
  /** Ports builds may reach on public addresses. `KILN_EGRESS_ALLOWED_PORTS`, default 80,443. */
  readonly allowedPorts: readonly number[];
  /**
   * Exact `host:port` destinations reached whatever their address (internal mirrors, which may
   * be private or loopback). `KILN_EGRESS_EXCEPTIONS`, default none. Hosts are normalised.
   */
  readonly exceptions: readonly { readonly host: string; readonly port: number }[];
  /**
   * The widest list a build's `allowed_hosts` may ask for (names, IP literals, `*.suffix`,
   * `*`). `KILN_EGRESS_HOSTS_CEILING`, default `*` (any public host).
   */
  readonly hostsCeiling: readonly string[];
  /** The list a build gets when it sends no `allowed_hosts`. `KILN_EGRESS_DEFAULT_HOSTS`, default the ceiling. */
  readonly defaultHosts: readonly string[];
  /** Extra ranges refused like private ones (say the host's NAT'ed public address). `KILN_EGRESS_DENIED_CIDRS`. */
  readonly deniedCidrs: readonly string[];
  /** Concurrent upstream connections per build. `KILN_EGRESS_MAX_CONNECTIONS`, default 64. */
  readonly maxConnections: number;
  /** A connection with no bytes either way for this long is closed. `KILN_EGRESS_IDLE_TIMEOUT_SECONDS`, default 120. */
  readonly idleTimeoutSeconds: number;
}

/** Lists are separated by commas and/or whitespace. */
function splitList(text: string): string[] {
  return text.split(/[\s,]+/).filter((item) => item !== '');
}

/** A list variable whose items each pass `parse` (returning undefined when invalid). */
function envList<T, D extends readonly T[] | undefined>(
  what: string,
  def: D,
  parse: (item: string) => T | undefined,
) {
  return z
    .string()
    .optional()
    .transform((text, ctx): readonly T[] | D => {
      if (text === undefined) return def;
      const items: T[] = [];
      const invalid: string[] = [];
      for (const item of splitList(text)) {
        const value = parse(item);
        if (value === undefined) invalid.push(item);
        else items.push(value);
      }
      if (invalid.length > 0) {
        ctx.issues.push({
          code: 'custom',
          message: `not ${what}: ${invalid.join(', ')}`,
          input: text,
        });
        return z.NEVER;
      }
      return items;
    });
}

const port = (item: string): number | undefined => {
  if (!/^\d{1,5}$/.test(item)) return undefined;
  const n = Number(item);
  return n >= 1 && n <= 65535 ? n : undefined;
};

const hostPort = (item: string) => parseConnectTarget(item).target;

const pattern = (item: string): string | undefined =>
  HostAllowlist.parse([item]).allowlist?.toStrings()[0];

const cidr = (item: string): string | undefined => {
  if (!ipaddr.isValidCIDR(item)) return undefined;
  const [net, bits] = ipaddr.parseCIDR(item);
  return `${net.toString()}/${bits}`;
};

/**
 * The `KILN_EGRESS_*` variables, each coerced and checked on its own. A plain object schema
 * (no refinements) so the daemon's configuration can `.extend()` it; the rules that relate
 * two variables live in {@link egressConfigFromEnv}.
 */
export const egressConfigSchema = z.object({
  KILN_EGRESS_ALLOWED_PORTS: envList('a port (1-65535)', [80, 443] as const, port).pipe(
    z.array(z.number()).min(1, 'needs at least one port'),
  ),
  KILN_EGRESS_EXCEPTIONS: envList('host:port', [] as const, hostPort),
  KILN_EGRESS_HOSTS_CEILING: envList('a host, *.suffix or *', ['*'] as const, pattern),
  KILN_EGRESS_DEFAULT_HOSTS: envList('a host, *.suffix or *', undefined, pattern),
  KILN_EGRESS_DENIED_CIDRS: envList('a CIDR range', [] as const, cidr),
  KILN_EGRESS_MAX_CONNECTIONS: envInt(64, 1, 4096),
  KILN_EGRESS_IDLE_TIMEOUT_SECONDS: envInt(120, 1, 3600),
});

/** What {@link egressConfigSchema} yields. */
export type EgressEnv = z.output<typeof egressConfigSchema>;

/**
 * Relates the parsed variables and shapes the result: the default list must lie within the
 * ceiling (a build without `allowed_hosts` must not get more than one with), and every
 * exception's host must be admitted by the ceiling (else no build could reach it). Returns
 * the config, or every problem found.
 */
export function egressConfigFromEnv(
  raw: EgressEnv,
): { config: EgressConfig; problems?: never } | { config?: never; problems: string[] } {
  const problems: string[] = [];
  const ceiling = parsedList(raw.KILN_EGRESS_HOSTS_CEILING);
  const defaults = raw.KILN_EGRESS_DEFAULT_HOSTS ?? raw.KILN_EGRESS_HOSTS_CEILING;
  const outside = parsedList(defaults).outside(ceiling);
  if (outside.length > 0) {
    problems.push(
      `KILN_EGRESS_DEFAULT_HOSTS: outside KILN_EGRESS_HOSTS_CEILING: ${outside.join(', ')}`,
    );
  }
  const unreachable = raw.KILN_EGRESS_EXCEPTIONS.filter((e) => !ceiling.admits(e.host.host));
  if (unreachable.length > 0) {
    problems.push(
      `KILN_EGRESS_EXCEPTIONS: not admitted by KILN_EGRESS_HOSTS_CEILING, so no build could reach: ${unreachable
        .map((e) => e.host.host)
        .join(', ')}`,
    );
  }
  if (problems.length > 0) return { problems };
  const config: EgressConfig = {
    allowedPorts: [...new Set(raw.KILN_EGRESS_ALLOWED_PORTS)],
    exceptions: raw.KILN_EGRESS_EXCEPTIONS.map((e) => ({ host: e.host.host, port: e.port })),
    hostsCeiling: raw.KILN_EGRESS_HOSTS_CEILING,
    defaultHosts: defaults,
    deniedCidrs: raw.KILN_EGRESS_DENIED_CIDRS,
    maxConnections: raw.KILN_EGRESS_MAX_CONNECTIONS,
    idleTimeoutSeconds: raw.KILN_EGRESS_IDLE_TIMEOUT_SECONDS,
  };
  return { config: deepFreeze(config) };
}

/**
 * Parses the `KILN_EGRESS_*` variables of `env` (pure: reads only `env`; empty values count
 * as unset, as in loadConfig). Returns the frozen config, or every problem, one per line,
 * prefixed with the variable's name.
 */
export function parseEgressConfig(
  env: Readonly<Record<string, string | undefined>>,
): { config: EgressConfig; problems?: never } | { config?: never; problems: string[] } {
  const input: Record<string, string> = {};
  for (const key of Object.keys(egressConfigSchema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = egressConfigSchema.safeParse(input);
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    };
  }
  return egressConfigFromEnv(parsed.data);
}

function parsedList(patterns: readonly string[]): HostAllowlist {
  const parsed = HostAllowlist.parse(patterns);
  if (parsed.allowlist === undefined) throw new TypeError('patterns were validated when parsed');
  return parsed.allowlist;
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
