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

/**
 * containers-registries.conf(5) v2 for Buildah. The Kiln registry is listed (insecure when
 * the guest talks plain HTTP to it). `docker.io` is mirrored into the Kiln registry under
 * `dockerHubMirrorNamespace`: a mirror's location replaces the matched prefix, so the
 * `docker.io/library` entry maps `docker.io/library/busybox` to
 * `<host>/<namespace>/busybox`, and the `docker.io` entry maps other Hub names
 * (`docker.io/org/x`) to `<host>/<namespace>/org/x`. Short names resolve through docker.io.
 */
export function renderRegistriesConf(registry: BuildJob['registry']): string {
  const host = registry.host;
  const mirror = `${host}/${registry.dockerHubMirrorNamespace}`;
  const insecure = registry.insecure ? 'true' : 'false';
  return [
    'unqualified-search-registries = ["docker.io"]',
    'short-name-mode = "permissive"',
    '',
    '[[registry]]',
    `prefix = ${tomlString(host)}`,
    `location = ${tomlString(host)}`,
    `insecure = ${insecure}`,
    '',
    '[[registry]]',
    'prefix = "docker.io/library"',
    'location = "docker.io/library"',
    '[[registry.mirror]]',
    `location = ${tomlString(mirror)}`,
    `insecure = ${insecure}`,
    '',
    '[[registry]]',
    'prefix = "docker.io"',
    'location = "docker.io"',
    '[[registry.mirror]]',
    `location = ${tomlString(mirror)}`,
    `insecure = ${insecure}`,
    '',
  ].join('\n');
}

/**
 * buildkitd.toml: the Kiln registry over plain HTTP when insecure, and docker.io mirrored to
 * it. BuildKit keeps the repository path when it goes to a mirror
 * (`docker.io/library/busybox` → `<mirror>/library/busybox`), so the mirror is the bare host
 * when the namespace is "library", and `<host>/<namespace>` otherwise.
 */
export function renderBuildkitdToml(
  registry: BuildJob['registry'],
  gc: BuildkitGcLimits | null = null,
): string {
  const host = registry.host;
  const mirror =
    registry.dockerHubMirrorNamespace === 'library'
      ? host
      : `${host}/${registry.dockerHubMirrorNamespace}`;
  return [
    `[registry.${tomlString('docker.io')}]`,
    `  mirrors = [${tomlString(mirror)}]`,
    '',
    `[registry.${tomlString(host)}]`,
    `  http = ${registry.insecure ? 'true' : 'false'}`,
    `  insecure = ${registry.insecure ? 'true' : 'false'}`,
    '',
    ...(gc === null ? [] : renderBuildkitGc(gc)),
  ].join('\n');
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
