import path from 'node:path';
import { z } from 'zod';
import { envBytes, envInt, envOptionalString } from './env-schema.js';

const GiB = 1024 ** 3;

/**
 * Registry endpoints of the well-known upstream names. Docker Hub's images are named
 * `docker.io/…` but its registry API is served by `registry-1.docker.io`.
 */
const KNOWN_ENDPOINTS: Readonly<Record<string, string>> = {
  'docker.io': 'https://registry-1.docker.io',
  'ghcr.io': 'https://ghcr.io',
  'quay.io': 'https://quay.io',
  'registry.k8s.io': 'https://registry.k8s.io',
};

const DEFAULT_UPSTREAMS = Object.keys(KNOWN_ENDPOINTS).join(',');

/**
 * An upstream name is one path component of `mirror/<name>/<repository>`, so it must be a
 * valid component of an OCI repository name (lowercase, dots and dashes, no port).
 */
const UPSTREAM_NAME_RE = /^[a-z0-9]+(?:[.-][a-z0-9]+)*$/;

const envBool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0'])
    .optional()
    .transform((v) => (v === undefined ? def : v === 'true' || v === '1'));

/** Pushes one problem about `variable` onto the issues zod reports for the section. */
type Report = (variable: string, message: string) => void;

/**
 * The pull-through mirror's environment variables and `Config['mirror']`: every problem is
 * reported with the rest of the configuration's, and the type is derived from the schema.
 */
export const mirrorConfigSchema = z
  .object({
    /**
     * Comma-separated upstreams, each `name` or `name=url`: `docker.io,ghcr.io,
     * internal=https://registry.example.com`. A known name without a URL gets its registry
     * endpoint; any other name `https://<name>`.
     */
    KILN_MIRROR_UPSTREAMS: envOptionalString(),
    /** `true` on hosts without internet access: no upstreams at all, only what is stored. */
    KILN_MIRROR_AIR_GAPPED: envBool(false),
    /** Upstream names allowed a plain `http://` URL (a registry on loopback or a trusted LAN). */
    KILN_MIRROR_INSECURE_UPSTREAMS: envOptionalString(),
    /**
     * A containers auth file (`auth.json` as written by `skopeo login --authfile`, or Docker's
     * `config.json`): credentials per upstream name, sent to that upstream's token service.
     */
    KILN_MIRROR_CREDENTIALS_FILE: envOptionalString(),
    /** Seconds a tag's resolution is served from the mirror before the upstream is asked again. */
    KILN_MIRROR_TAG_TTL_SECONDS: envInt(300, 0, 30 * 86_400),
    /** Seconds to wait for an upstream to answer (connect and headers; also between body chunks). */
    KILN_MIRROR_UPSTREAM_TIMEOUT_SECONDS: envInt(10, 1, 600),
    /**
     * Bytes of mirrored content kept (blobs only the mirror holds, and its manifests); past it
     * the least recently pulled images are evicted. `0` keeps everything.
     */
    KILN_MIRROR_MAX_BYTES: envBytes(20 * GiB, 0, 1024 ** 5),
  })
  .transform((r, ctx) => {
    const report: Report = (variable, message) => {
      ctx.issues.push({ code: 'custom', path: [variable], message, input: r });
    };
    const insecure = new Set(splitList(r.KILN_MIRROR_INSECURE_UPSTREAMS));
    const upstreams: UpstreamConfig[] = [];
    if (r.KILN_MIRROR_AIR_GAPPED && r.KILN_MIRROR_UPSTREAMS !== undefined) {
      report('KILN_MIRROR_UPSTREAMS', 'must not be set when KILN_MIRROR_AIR_GAPPED is true');
    }
    const entries = r.KILN_MIRROR_AIR_GAPPED
      ? []
      : splitList(r.KILN_MIRROR_UPSTREAMS ?? DEFAULT_UPSTREAMS);
    const seen = new Set<string>();
    for (const entry of entries) {
      const eq = entry.indexOf('=');
      const name = (eq < 0 ? entry : entry.slice(0, eq)).trim();
      const url = eq < 0 ? undefined : entry.slice(eq + 1).trim();
      if (!UPSTREAM_NAME_RE.test(name)) {
        report(
          'KILN_MIRROR_UPSTREAMS',
          `"${name}" is not a valid upstream name (lowercase letters, digits, dots and dashes)`,
        );
        continue;
      }
      if (seen.has(name)) {
        report('KILN_MIRROR_UPSTREAMS', `"${name}" is listed twice`);
        continue;
      }
      seen.add(name);
      const endpoint = endpointOf(name, url, insecure.has(name), report);
      if (endpoint !== null) upstreams.push(Object.freeze({ name, endpoint }));
    }
    for (const name of insecure) {
      if (!seen.has(name)) {
        report('KILN_MIRROR_INSECURE_UPSTREAMS', `"${name}" is not a configured upstream`);
      }
    }
    return {
      /** The configured upstreams, in the order listed; empty when air-gapped. */
      upstreams: Object.freeze(upstreams),
      /** The credentials file (absolute), read once when the registry starts; or null. */
      credentialsFile:
        r.KILN_MIRROR_CREDENTIALS_FILE === undefined
          ? null
          : path.resolve(r.KILN_MIRROR_CREDENTIALS_FILE),
      tagTtlSeconds: r.KILN_MIRROR_TAG_TTL_SECONDS,
      upstreamTimeoutSeconds: r.KILN_MIRROR_UPSTREAM_TIMEOUT_SECONDS,
      /** Bytes of mirrored content kept before least-recently-used eviction; 0 = unlimited. */
      maxBytes: r.KILN_MIRROR_MAX_BYTES,
    };
  });

/** One configured upstream registry. */
export interface UpstreamConfig {
  /** The name images are mirrored under: `mirror/<name>/<repository>`. */
  readonly name: string;
  /** The registry API's origin (`https://registry-1.docker.io`), without a path. */
  readonly endpoint: string;
}

/** The pull-through mirror's configuration (credentials are read from the file at start). */
export type MirrorConfig = Readonly<z.output<typeof mirrorConfigSchema>>;

/** Thrown by parseMirrorConfig with every problem found. */
export class MirrorConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid mirror configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'MirrorConfigError';
    this.problems = problems;
  }
}

function splitList(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/**
 * Parses the `KILN_MIRROR_*` variables alone (pure: it reads only `env`), reporting every
 * problem at once, and returns a frozen MirrorConfig. `loadConfig` parses the same schema as
 * its `mirror` section; this is for callers that need the section without the rest. Without
 * any variable set the mirror serves Docker Hub, GitHub's, Quay's and Kubernetes' registries
 * anonymously.
 */
export function parseMirrorConfig(env: Readonly<Record<string, string | undefined>>): MirrorConfig {
  const input: Record<string, string> = {};
  for (const key of Object.keys(mirrorConfigSchema.in.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') input[key] = value;
  }
  const parsed = mirrorConfigSchema.safeParse(input);
  if (!parsed.success) {
    throw new MirrorConfigError(
      parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`),
    );
  }
  return Object.freeze(parsed.data);
}

function endpointOf(
  name: string,
  url: string | undefined,
  insecure: boolean,
  report: Report,
): string | null {
  const text = url ?? KNOWN_ENDPOINTS[name] ?? `https://${name}`;
  let parsed: URL;
  try {
    parsed = new URL(text);
  } catch {
    report('KILN_MIRROR_UPSTREAMS', `the URL of "${name}" is not an absolute URL`);
    return null;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    report('KILN_MIRROR_UPSTREAMS', `the URL of "${name}" must be http(s)`);
    return null;
  }
  if (parsed.protocol === 'http:' && !insecure) {
    report(
      'KILN_MIRROR_UPSTREAMS',
      `"${name}" uses plain http; list it in KILN_MIRROR_INSECURE_UPSTREAMS to allow that`,
    );
    return null;
  }
  if (parsed.pathname !== '/' || parsed.search !== '' || parsed.username !== '') {
    report(
      'KILN_MIRROR_UPSTREAMS',
      `the URL of "${name}" must be an origin only (no path, query or user)`,
    );
    return null;
  }
  return parsed.origin;
}
