import { OciError } from './oci-error.js';

/**
 * One path component of a repository name, per the distribution spec ("Pulling manifests",
 * `<name>`): `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`. Runs of `-` are allowed, `_` at most twice,
 * `.` once; a component never starts or ends with a separator.
 */
const COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*';
const COMPONENT_RE = new RegExp(`^${COMPONENT}$`);
/** The whole name: components joined by `/`. */
const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);

/**
 * The spec notes that many clients limit `<registry host>/<name>` to 255 characters; Kiln
 * holds the name itself to that, so no name it accepts is one a client cannot use.
 */
export const MAX_REPOSITORY_NAME_LENGTH = 255;

/** Tags per the spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. */
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

/** True for a full repository name (`acme/web`, `cache/acme/main`). */
export function isValidRepositoryName(name: string): boolean {
  return name.length <= MAX_REPOSITORY_NAME_LENGTH && NAME_RE.test(name);
}

/**
 * True for one path component (no `/`): what a tenant or a cache scope must be to stand
 * between the slashes of a repository name.
 */
export function isValidNameComponent(component: string): boolean {
  return component.length <= MAX_REPOSITORY_NAME_LENGTH && COMPONENT_RE.test(component);
}

/** Throws `NAME_INVALID` (the spec's code for a name outside the grammar). */
export function assertRepositoryName(name: string): void {
  if (!isValidRepositoryName(name)) {
    throw new OciError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  }
}

/** True for a tag (a manifest reference that is not a digest). */
export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
