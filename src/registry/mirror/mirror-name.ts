import { BASE_IMAGE_NAMESPACE, MIRROR_NAMESPACE } from '../../auth/scopes.js';

/** A repository of the mirror namespace: `mirror/<upstream>/<repository>`. */
export interface MirrorName {
  /** The full local name, `mirror/docker.io/library/busybox`. */
  local: string;
  /** The configured upstream's name, `docker.io`. */
  upstream: string;
  /** The repository at the upstream, `library/busybox`. */
  repository: string;
}

/** The upstream whose official images an operator may pin under `library/`. */
const DOCKER_HUB = 'docker.io';

/**
 * Splits a repository name of the mirror namespace, or returns null for any other name (and
 * for `mirror/<upstream>` alone, which names no repository at the upstream).
 */
export function parseMirrorName(name: string): MirrorName | null {
  const prefix = `${MIRROR_NAMESPACE}/`;
  if (!name.startsWith(prefix)) return null;
  const rest = name.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0 || slash === rest.length - 1) return null;
  return { local: name, upstream: rest.slice(0, slash), repository: rest.slice(slash + 1) };
}

/** True for names inside the mirror namespace, which only the mirror writes. */
export function isMirrorNamespace(name: string): boolean {
  return name === MIRROR_NAMESPACE || name.startsWith(`${MIRROR_NAMESPACE}/`);
}

/**
 * The operator-seeded repository that takes precedence over a mirrored one: a Docker Hub
 * official image `mirror/docker.io/library/<x>` is first looked up as `library/<x>`, so an
 * image an operator pushed there (pinned, patched, or the only copy on an air-gapped host)
 * wins over the upstream's. Other names have none.
 */
export function seededName(name: MirrorName): string | null {
  if (name.upstream !== DOCKER_HUB) return null;
  if (!name.repository.startsWith(`${BASE_IMAGE_NAMESPACE}/`)) return null;
  return name.repository;
}
