import { BUILD_ID_PATTERN } from './build-id.js';
import type { Build, BuildRequest, ImageTag } from './build.js';
import { CACHE_NAMESPACE } from '../auth/scopes.js';
import {
  isValidNameComponent,
  isValidRepositoryName,
  isValidTag,
} from '../registry/repository-name.js';

/**
 * Longest `image_name` / `cache_scope` a client may give. With the longest tenant (63) the
 * output `<tenant>/<image_name>` and the cache `cache/<tenant>/<scope>` stay well under the
 * registry's 255-character name limit.
 */
const MAX_NAME_LENGTH = 128;

/** The tag `NAME` alone stands for, as in Docker. */
export const DEFAULT_TAG = 'latest';

/** The part of a request that names the image. */
export type ImageNaming = Pick<BuildRequest, 'imageName' | 'imageTags'>;

/** One reference a build pushes: a repository (with the tenant) and a tag. */
export interface OutputReference {
  repository: string;
  tag: string;
}

/** True for an image name inside a tenant: one or more OCI name components joined by `/`. */
export function isValidImageName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && isValidRepositoryName(name);
}

/**
 * True for a tag a client may ask for: the OCI tag grammar, and not shaped like a build id,
 * since every build's own tag is its id and another build must not be able to pose as it.
 */
export function isValidImageTag(tag: string): boolean {
  return isValidTag(tag) && !BUILD_ID_PATTERN.test(tag);
}

/** True for a cache scope: exactly one OCI name component. */
export function isValidCacheScope(scope: string): boolean {
  return scope.length <= MAX_NAME_LENGTH && isValidNameComponent(scope);
}

/** The name of the build's own repository: the first `image_tags` name, else `image_name`. */
function primaryName(request: ImageNaming): string | null {
  return request.imageTags?.[0]?.name ?? request.imageName;
}

/**
 * Images land in `<tenant>/<the first image_tags name, image_name, or the build id>`
 * (docs/contracts.md#registry-namespaces).
 */
export function outputRepository(tenant: string, buildId: string, request: ImageNaming): string {
  return `${tenant}/${primaryName(request) ?? buildId}`;
}

/** The build cache lives in `cache/<tenant>/<scope>` (docs/contracts.md#registry-namespaces). */
export function cacheRepository(tenant: string, scope: string | null): string | null {
  return scope === null ? null : `${CACHE_NAMESPACE}/${tenant}/${scope}`;
}

/**
 * Every reference a build pushes, its own first: `<repository>:<build id>`, then each
 * `image_tags` entry as `<tenant>/<name>:<tag>` (or, with `image_name`, `latest` beside the
 * id). No reference twice.
 */
export function outputReferences(
  tenant: string,
  buildId: string,
  request: ImageNaming,
): OutputReference[] {
  const repository = outputRepository(tenant, buildId, request);
  const named: ImageTag[] =
    request.imageTags ??
    (request.imageName === null ? [] : [{ name: request.imageName, tag: DEFAULT_TAG }]);
  const refs: OutputReference[] = [{ repository, tag: buildId }];
  for (const { name, tag } of named) {
    const ref = { repository: `${tenant}/${name}`, tag };
    if (!refs.some((r) => r.repository === ref.repository && r.tag === ref.tag)) refs.push(ref);
  }
  return refs;
}

/** What names a stored build's output: its repository as created, and its request. */
export type BuildNaming = Pick<Build, 'id' | 'tenant' | 'repository'> & { request: ImageNaming };

/**
 * A build's references (see outputReferences), its own repository as stored in the build (the
 * row keeps the name it was created with).
 */
export function buildReferences(build: BuildNaming): OutputReference[] {
  const own = outputRepository(build.tenant, build.id, build.request);
  return outputReferences(build.tenant, build.id, build.request).map((r) =>
    r.repository === own ? { ...r, repository: build.repository } : r,
  );
}

/** The repositories a build pushes to (its own first), each once. */
export function buildRepositories(build: BuildNaming): string[] {
  return [...new Set(buildReferences(build).map((r) => r.repository))];
}

/** Tags pushed in the build's own repository: the build id first, then those named there. */
export function buildTags(build: BuildNaming): string[] {
  return buildReferences(build)
    .filter((r) => r.repository === build.repository)
    .map((r) => r.tag);
}
