import type { UnpackedEntry } from '../source/unpack-source.js';

/** Lockfile names recorded in provenance (exact names, plus requirements*.txt). */
const LOCKFILE_NAMES: readonly string[] = [
  'package-lock.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'go.sum',
  'Cargo.lock',
  'poetry.lock',
  'Gemfile.lock',
  'composer.lock',
];

function isLockfileName(name: string): boolean {
  return LOCKFILE_NAMES.includes(name) || /^requirements.*\.txt$/.test(name);
}

/**
 * Lockfiles inside the build context: path relative to the context → sha256 of the content.
 * Regular files only (a symlinked lockfile is not followed).
 */
export function findLockfiles(
  entries: readonly UnpackedEntry[],
  contextPrefix: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  const prefix = contextPrefix === '' ? '' : `${contextPrefix}/`;
  for (const e of entries) {
    if (e.type !== 'file' || !e.path.startsWith(prefix)) continue;
    const rel = e.path.slice(prefix.length);
    const base = rel.slice(rel.lastIndexOf('/') + 1);
    if (isLockfileName(base)) out[rel] = e.sha256;
  }
  return out;
}
