import type { BuildJob } from '../../common/protocol/build-job.js';

/**
 * Username put next to the build's registry token; the registry ignores it
 * (docs/contracts.md#registry-access).
 */
const REGISTRY_TOKEN_USERNAME = 'kiln-build';

/** containers-auth.json(5) / Docker config.json: Basic auth with the token as password. */
export function renderAuthJson(registryHost: string, token: string): string {
  const auth = Buffer.from(`${REGISTRY_TOKEN_USERNAME}:${token}`, 'utf8').toString('base64');
  return `${JSON.stringify({ auths: { [registryHost]: { auth } } }, null, 2)}\n`;
}

function tomlString(value: string): string {
  return JSON.stringify(value);
}

/** `<host>/<namespace>/<upstream>`: where an upstream's images live in the Kiln registry. */
function mirrorLocation(registry: BuildJob['registry'], upstream: string): string {
  return `${registry.host}/${registry.mirror.namespace}/${upstream}`;
}

/**
 * containers-registries.conf(5) v2 for Buildah. The Kiln registry is listed (insecure when
 * the guest talks plain HTTP to it), and each mirrored upstream is rewritten into it: a
 * registry's `location` replaces its matched `prefix`, so `docker.io/library/node:22-slim`
 * becomes `<host>/mirror/docker.io/library/node:22-slim` and `ghcr.io/org/img` becomes
 * `<host>/mirror/ghcr.io/org/img`. The upstream itself is never a fallback (no
 * `[[registry.mirror]]` entries, which Buildah would try before the location): the guest has
 * no route to it. Short names resolve through docker.io (`node` → `docker.io/library/node`,
 * `someorg/tool` → `docker.io/someorg/tool`).
 */
export function renderRegistriesConf(registry: BuildJob['registry']): string {
  const host = registry.host;
  const insecure = registry.insecure ? 'true' : 'false';
  const lines = [
    'unqualified-search-registries = ["docker.io"]',
    'short-name-mode = "permissive"',
    '',
    '[[registry]]',
    `prefix = ${tomlString(host)}`,
    `location = ${tomlString(host)}`,
    `insecure = ${insecure}`,
    '',
  ];
  for (const upstream of registry.mirror.upstreams) {
    lines.push(
      '[[registry]]',
      `prefix = ${tomlString(upstream)}`,
      `location = ${tomlString(mirrorLocation(registry, upstream))}`,
      `insecure = ${insecure}`,
      '',
    );
  }
  return lines.join('\n');
}

/**
 * buildkitd.toml: the Kiln registry over plain HTTP when insecure, and each mirrored upstream
 * given the Kiln registry as its mirror. BuildKit's resolver (util/resolver) turns a mirror
 * `host/path` into the API root `http(s)://host/v2/path` and appends the image's full
 * repository, so `docker.io/someorg/tool` with the mirror `<host>/mirror/docker.io` is asked
 * for at `<host>/v2/mirror/docker.io/someorg/tool/…`: every Hub namespace, not only
 * `library`, lands in its mirrored repository.
 */
export function renderBuildkitdToml(
  registry: BuildJob['registry'],
  gc: BuildkitGcLimits | null = null,
): string {
  const host = registry.host;
  const lines: string[] = [];
  for (const upstream of registry.mirror.upstreams) {
    lines.push(
      `[registry.${tomlString(upstream)}]`,
      `  mirrors = [${tomlString(mirrorLocation(registry, upstream))}]`,
      '',
    );
  }
  lines.push(
    `[registry.${tomlString(host)}]`,
    `  http = ${registry.insecure ? 'true' : 'false'}`,
    `  insecure = ${registry.insecure ? 'true' : 'false'}`,
    '',
    ...(gc === null ? [] : renderBuildkitGc(gc)),
  );
  return lines.join('\n');
}

/** Bounds on BuildKit's state when it lives on a cache disk of `diskBytes`. */
export interface BuildkitGcLimits {
  diskBytes: number;
  /** Percent of the disk BuildKit's garbage collector keeps its state under. */
  thresholdPercent: number;
}

/**
 * The `[worker.oci]` garbage-collection section (buildkitd.toml(5), BuildKit ≥ 0.17 names):
 * state is kept under `maxUsedSpace`, and at least `minFreeSpace` of the disk stays free, so
 * the cache disk never fills; `reservedSpace` is what GC never frees below. Values are byte
 * counts written as strings, which BuildKit's disk-space parser reads.
 */
export function renderBuildkitGc(limits: BuildkitGcLimits): string[] {
  const maxUsed = Math.floor((limits.diskBytes * limits.thresholdPercent) / 100);
  const minFree = limits.diskBytes - maxUsed;
  const reserved = Math.floor(maxUsed / 10);
  return [
    '[worker.oci]',
    '  gc = true',
    `  reservedSpace = ${tomlString(String(reserved))}`,
    `  maxUsedSpace = ${tomlString(String(maxUsed))}`,
    `  minFreeSpace = ${tomlString(String(minFree))}`,
    '',
  ];
}
