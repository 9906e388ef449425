import { readFile, readdir, lstat } from 'node:fs/promises';
import path from 'node:path';
import dockerignore from '@balena/dockerignore';
import { CliExit, EXIT } from './cli-exit.js';

/** The files of a build context that go into the upload, after `.dockerignore`. */
export interface BuildContext {
  /** Absolute directory the entries are relative to. */
  root: string;
  /** Relative POSIX paths in walk order: directories before what they hold. */
  entries: string[];
  /** Estimated bytes of the uncompressed tar stream (headers and padding included). */
  tarBytes: number;
  /** The ignore file that applied, relative to `root`, or null. */
  ignoreFile: string | null;
  /** True when `rel` (a relative POSIX path) is left out by the ignore rules. */
  ignores(rel: string): boolean;
}

const BLOCK = 512;
/** ustar keeps names up to 100 bytes; longer ones cost a pax header block pair. */
const USTAR_NAME_BYTES = 100;

function entryBytes(rel: string, size: number): number {
  const pax = Buffer.byteLength(rel) > USTAR_NAME_BYTES ? 3 * BLOCK : 0;
  return pax + BLOCK + Math.ceil(size / BLOCK) * BLOCK;
}

async function readIgnoreFile(file: string): Promise<string | null> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Lists the context under `root` as `docker build` would send it. The rules come from
 * `<Dockerfile>.dockerignore` next to the Dockerfile when that exists (BuildKit's per-Dockerfile
 * ignore file), else from `<root>/.dockerignore`; matching is Docker's own (the
 * `@balena/dockerignore` port of moby's fileutils matcher: `*` stays within one path segment,
 * `**` spans any number, a leading `/` is dropped, a pattern also excludes everything below a
 * matched directory, and the last matching line wins, so `!` re-includes). A directory that
 * is excluded is still walked when some `!` rule exists, because an exception may re-include a
 * file below it (moby's archive walker does the same). Only regular files, directories and
 * symbolic links (kept as links, never followed) are sent; sockets and fifos are skipped like
 * Docker skips them.
 */
export async function listBuildContext(
  root: string,
  dockerfile: string | null,
): Promise<BuildContext> {
  const info = await lstat(root).catch(() => null);
  if (!info?.isDirectory()) {
    throw new CliExit(EXIT.usage, `build context ${root} is not a directory`);
  }
  let ignoreFile: string | null = null;
  let rules: string | null = null;
  if (dockerfile !== null) {
    const specific = `${dockerfile}.dockerignore`;
    rules = await readIgnoreFile(specific);
    if (rules !== null) ignoreFile = path.relative(root, specific);
  }
  if (rules === null) {
    rules = await readIgnoreFile(path.join(root, '.dockerignore'));
    if (rules !== null) ignoreFile = '.dockerignore';
  }
  // A CommonJS module whose types declare `export default`: the factory is its `.default`.
  const matcher = dockerignore.default().add(rules ?? '');
  const hasExceptions = (rules ?? '').split(/\r?\n/).some((line) => line.trim().startsWith('!'));
  const ignores = (rel: string) => matcher.ignores(rel);

  const entries: string[] = [];
  let tarBytes = 2 * BLOCK;
  const walk = async (dirRel: string): Promise<void> => {
    const names = (await readdir(path.join(root, dirRel))).sort();
    for (const name of names) {
      const rel = dirRel === '' ? name : `${dirRel}/${name}`;
      const stat = await lstat(path.join(root, rel));
      const excluded = ignores(rel);
      if (stat.isDirectory()) {
        if (!excluded) {
          entries.push(rel);
          tarBytes += entryBytes(rel, 0);
        }
        if (!excluded || hasExceptions) await walk(rel);
      } else if (!excluded && (stat.isFile() || stat.isSymbolicLink())) {
        entries.push(rel);
        tarBytes += entryBytes(rel, stat.isFile() ? stat.size : 0);
      }
    }
  };
  await walk('');
  return { root, entries, tarBytes, ignoreFile, ignores };
}
