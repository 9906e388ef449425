import { OciError } from './oci-error.js';

/**
 * Repository names per the distribution spec ("Pulling manifests", `<name>`):
 * `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(\/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*`.
 */
const NAME_RE =
  /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;

/** Tags per the spec: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`. */
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function isValidRepositoryName(name: string): boolean {
  return name.length <= 255 && NAME_RE.test(name);
}

export function assertRepositoryName(name: string): void {
  if (!isValidRepositoryName(name)) {
    throw new OciError('NAME_INVALID', 'invalid repository name', { detail: { name } });
  }
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}
