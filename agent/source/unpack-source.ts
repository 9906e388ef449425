import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { link, mkdir, open, symlink, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { ByteReader } from './byte-reader.js';
import { entryComponents, printable } from './safe-path.js';
import { ExtendedHeaders, isExtensionType } from '../../common/archive/extended-headers.js';
import { isTarFormatError } from '../../common/archive/tar-format-error.js';
import {
  blockPadding,
  decodeTarHeader,
  TAR_BLOCK,
  type TarHeader,
} from '../../common/archive/tar-header.js';
import { AppError } from '../../src/errors/app-error.js';

/** Limits re-checked in the guest (build.json `source`), whatever the host already checked. */
export interface UnpackLimits {
  maxUnpackedBytes: number;
  maxEntries: number;
  maxPathBytes: number;
}

export type UnpackedEntry =
  | { type: 'dir'; path: string; mode: number }
  | { type: 'file'; path: string; mode: number; size: number; sha256: string }
  | { type: 'symlink'; path: string; target: string };

export interface UnpackResult {
  /** Every path in the extracted tree (implicit parent directories included), sorted. */
  entries: UnpackedEntry[];
  /** sha256 over the sorted paths, types, modes and contents (see treeDigest). */
  treeSha256: string;
  /** Bytes of regular-file content written. */
  unpackedBytes: number;
}

/** Largest pax or GNU long-name header body accepted. */
const MAX_META_BYTES = 1024 * 1024;

/**
 * Unpacks an (already decompressed) tar stream into `root`, an empty directory, defensively:
 * - no absolute names and no `..` (SOURCE_UNSAFE_PATH);
 * - nothing is ever written through a symlink or under a non-directory: every parent of an
 *   entry must be a directory this unpacker created (tracked in memory; the root is fresh);
 * - symlinks must resolve inside the root, checked over the whole tree once it is complete,
 *   following the archive's own symlinks (SOURCE_BAD_LINK);
 * - hardlinks only to an earlier regular file inside the root (SOURCE_BAD_LINK);
 * - no devices, fifos or other special entries (SOURCE_FORBIDDEN_ENTRY);
 * - entry count, path length and unpacked bytes within `limits`, re-checked here;
 * - files are created with O_EXCL|O_NOFOLLOW, permission bits only (no setuid/setgid/sticky).
 */
export async function unpackSource(
  tar: Readable,
  root: string,
  limits: UnpackLimits,
): Promise<UnpackResult> {
  const tree = new Map<string, UnpackedEntry>();
  const reader = new ByteReader(tar[Symbol.asyncIterator]() as AsyncIterator<Buffer>);
  let entries = 0;
  let unpackedBytes = 0;
  let first = true;
  const extensions = new ExtendedHeaders();

  try {
    for (;;) {
      const block = await reader.readExact(TAR_BLOCK);
      if (block.length === 0) {
        if (first) throw new AppError('SOURCE_NOT_ARCHIVE', 'the source is empty');
        // Missing end-of-archive blocks: tolerated, as GNU tar does, if nothing is pending.
        extensions.assertNonePending();
        break;
      }
      const header = decodeTarHeader(block);
      first = false;
      if (header === null) {
        extensions.assertNonePending();
        break;
      }

      if (isExtensionType(header.type)) {
        // An extension header's body is read with its own size, never a pending pax size.
        if (header.size > MAX_META_BYTES) {
          throw new AppError('SOURCE_CORRUPT', `an extended header of ${header.size} bytes`);
        }
        const body = await readBody(reader, header.size);
        extensions.apply(header.type, body);
        continue;
      }

      const full = extensions.resolve(header);
      const { name, linkName, size, type: meta } = full;

      entries++;
      if (entries > limits.maxEntries) {
        throw new AppError(
          'SOURCE_TOO_MANY_ENTRIES',
          `the source has more than ${limits.maxEntries} entries`,
        );
      }
      const parts = entryComponents(name, limits.maxPathBytes);
      const entryPath = parts.join('/');

      switch (meta) {
        case '0':
        case '\0':
        case '7': {
          if (unpackedBytes + size > limits.maxUnpackedBytes) {
            throw new AppError(
              'SOURCE_UNPACKED_TOO_LARGE',
              `the unpacked source exceeds ${limits.maxUnpackedBytes} bytes`,
            );
          }
          unpackedBytes += size;
          requireNonRoot(parts, name);
          await prepareParents(root, parts, tree);
          await replaceable(root, entryPath, tree);
          const sha256 = await writeFile(reader, path.join(root, ...parts), full);
          tree.set(entryPath, {
            type: 'file',
            path: entryPath,
            mode: fileMode(header.mode),
            size,
            sha256,
          });
          break;
        }
        case '5': {
          await skipBody(reader, size);
          if (parts.length === 0) break;
          await prepareParents(root, parts, tree);
          const existing = tree.get(entryPath);
          if (existing && existing.type !== 'dir') {
            throw new AppError(
              'SOURCE_UNSAFE_PATH',
              `directory "${printable(entryPath)}" replaces a non-directory`,
            );
          }
          if (!existing) await mkdir(path.join(root, ...parts), { mode: 0o755 });
          tree.set(entryPath, { type: 'dir', path: entryPath, mode: dirMode(header.mode) });
          break;
        }
        case '2': {
          await skipBody(reader, size);
          requireNonRoot(parts, name);
          const target = linkName.toString('utf8');
          checkSymlinkTarget(parts, target);
          await prepareParents(root, parts, tree);
          await replaceable(root, entryPath, tree);
          await symlink(target, path.join(root, ...parts));
          tree.set(entryPath, { type: 'symlink', path: entryPath, target });
          break;
        }
        case '1': {
          await skipBody(reader, size);
          requireNonRoot(parts, name);
          const targetParts = entryComponents(linkName, limits.maxPathBytes);
          const targetPath = targetParts.join('/');
          const target = tree.get(targetPath);
          if (target?.type !== 'file') {
            throw new AppError(
              'SOURCE_BAD_LINK',
              `hardlink "${printable(entryPath)}" does not point to an earlier file`,
            );
          }
          if (targetPath === entryPath) break;
          await prepareParents(root, parts, tree);
          await replaceable(root, entryPath, tree);
          await link(path.join(root, ...targetParts), path.join(root, ...parts));
          tree.set(entryPath, { ...target, path: entryPath });
          break;
        }
        case '3':
        case '4':
        case '6':
          throw new AppError(
            'SOURCE_FORBIDDEN_ENTRY',
            `"${printable(entryPath)}" is a ${meta === '6' ? 'fifo' : 'device node'}`,
          );
        default:
          throw new AppError(
            'SOURCE_FORBIDDEN_ENTRY',
            `"${printable(entryPath)}" has unsupported tar type "${printable(meta)}"`,
          );
      }
    }
  } catch (err) {
    // `first` is still true only while the very first header is being decoded.
    throw guestError(err, first);
  } finally {
    tar.destroy();
  }

  checkSymlinksStayInside(tree);
  const sorted = [...tree.values()].sort((a, b) => compareBytes(a.path, b.path));
  return { entries: sorted, treeSha256: treeDigest(sorted), unpackedBytes };
}

/**
 * sha256 over the extracted tree: for each path in byte order, one line
 * `<type> NUL <path> NUL <octal mode or "-"> NUL <content sha256 or link target> LF`.
 */
export function treeDigest(sorted: readonly UnpackedEntry[]): string {
  const h = createHash('sha256');
  for (const e of sorted) {
    switch (e.type) {
      case 'dir':
        h.update(`dir\0${e.path}\0${e.mode.toString(8)}\0\n`);
        break;
      case 'file':
        h.update(`file\0${e.path}\0${e.mode.toString(8)}\0${e.sha256}\n`);
        break;
      case 'symlink':
        h.update(`symlink\0${e.path}\0-\0${e.target}\n`);
        break;
    }
  }
  return h.digest('hex');
}

/**
 * Maps a failure of the shared tar decoding (common/archive) to the agent's errors: a bad
 * checksum or number field in the very first header means the source is not a tar archive.
 */
function guestError(err: unknown, first: boolean): unknown {
  if (!isTarFormatError(err)) return err;
  switch (err.reason) {
    case 'checksum':
    case 'number':
      return first
        ? new AppError('SOURCE_NOT_ARCHIVE', `the source is not a tar archive (${err.message})`, {
            cause: err,
          })
        : new AppError('SOURCE_CORRUPT', err.message, { cause: err });
    case 'pax-global-override':
      return new AppError('SOURCE_FORBIDDEN_ENTRY', err.message, { cause: err });
    case 'truncated-header':
    case 'pax-record':
    case 'pax-size':
    case 'dangling-extension':
    case 'hardlink-data':
      return new AppError('SOURCE_CORRUPT', err.message, { cause: err });
  }
}

function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function fileMode(mode: number): number {
  return (mode & 0o777) | 0o600;
}

function dirMode(mode: number): number {
  return (mode & 0o777) | 0o700;
}

function requireNonRoot(parts: string[], raw: Buffer): void {
  if (parts.length === 0) {
    throw new AppError(
      'SOURCE_UNSAFE_PATH',
      `entry "${printable(raw.toString('utf8'))}" names the root`,
    );
  }
}

/** Creates missing parents; refuses to go through anything that is not our directory. */
async function prepareParents(
  root: string,
  parts: string[],
  tree: Map<string, UnpackedEntry>,
): Promise<void> {
  for (let i = 1; i < parts.length; i++) {
    const sub = parts.slice(0, i).join('/');
    const existing = tree.get(sub);
    if (existing === undefined) {
      await mkdir(path.join(root, ...parts.slice(0, i)), { mode: 0o755 });
      tree.set(sub, { type: 'dir', path: sub, mode: 0o755 });
    } else if (existing.type !== 'dir') {
      throw new AppError(
        'SOURCE_UNSAFE_PATH',
        `"${printable(parts.join('/'))}" would be written through ${existing.type} "${printable(sub)}"`,
      );
    }
  }
}

/** A later entry may replace an earlier non-directory (tar semantics); never a directory. */
async function replaceable(
  root: string,
  entryPath: string,
  tree: Map<string, UnpackedEntry>,
): Promise<void> {
  const existing = tree.get(entryPath);
  if (existing === undefined) return;
  if (existing.type === 'dir') {
    throw new AppError('SOURCE_UNSAFE_PATH', `"${printable(entryPath)}" replaces a directory`);
  }
  // unlink removes the name itself, never what a symlink points to.
  await unlink(path.join(root, entryPath));
  tree.delete(entryPath);
}

/** Symlink targets: relative, and lexically inside the root from the link's directory. */
function checkSymlinkTarget(parts: string[], target: string): void {
  if (target === '' || target.includes('\0')) {
    throw new AppError('SOURCE_BAD_LINK', `symlink "${printable(parts.join('/'))}" is empty`);
  }
  if (target.startsWith('/')) {
    throw new AppError(
      'SOURCE_BAD_LINK',
      `symlink "${printable(parts.join('/'))}" has an absolute target`,
    );
  }
  let depth = parts.length - 1;
  for (const c of target.split('/')) {
    if (c === '..') depth--;
    else if (c !== '' && c !== '.') depth++;
    if (depth < 0) {
      throw new AppError(
        'SOURCE_BAD_LINK',
        `symlink "${printable(parts.join('/'))}" points outside the source`,
      );
    }
  }
}

/**
 * Resolves every symlink against the finished tree, following the archive's own symlinks
 * (a lexical check alone misses `a -> .` plus `b -> a/..`), and fails when any resolution
 * step leaves the root or loops.
 */
function checkSymlinksStayInside(tree: Map<string, UnpackedEntry>): void {
  for (const entry of tree.values()) {
    if (entry.type !== 'symlink') continue;
    const dir = entry.path.split('/').slice(0, -1);
    resolveInside(tree, dir, entry.target.split('/'), entry.path, 0);
  }
}

function resolveInside(
  tree: Map<string, UnpackedEntry>,
  base: string[],
  rest: string[],
  origin: string,
  hops: number,
): string[] {
  if (hops > 40) {
    throw new AppError('SOURCE_BAD_LINK', `symlink "${printable(origin)}" loops`);
  }
  const cur = [...base];
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i] ?? '';
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (cur.length === 0) {
        throw new AppError(
          'SOURCE_BAD_LINK',
          `symlink "${printable(origin)}" resolves outside the source`,
        );
      }
      cur.pop();
      continue;
    }
    cur.push(c);
    const hit = tree.get(cur.join('/'));
    if (hit?.type === 'symlink') {
      cur.pop();
      const resolved = resolveInside(tree, cur, hit.target.split('/'), origin, hops + 1);
      cur.length = 0;
      cur.push(...resolved);
    }
  }
  return cur;
}

async function writeFile(reader: ByteReader, file: string, header: TarHeader): Promise<string> {
  const handle = await open(
    file,
    constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
    fileMode(header.mode),
  );
  const h = createHash('sha256');
  try {
    let left = header.size;
    while (left > 0) {
      const chunk = await reader.readUpTo(Math.min(left, 1024 * 1024));
      if (chunk.length === 0) {
        throw new AppError('SOURCE_CORRUPT', 'the archive ends inside a file');
      }
      h.update(chunk);
      await handle.write(chunk);
      left -= chunk.length;
    }
    await handle.chmod(fileMode(header.mode));
    if (header.mtime > 0) await handle.utimes(header.mtime, header.mtime);
  } finally {
    await handle.close();
  }
  await skipPadding(reader, header.size);
  return h.digest('hex');
}

async function readBody(reader: ByteReader, size: number): Promise<Buffer> {
  const body = await reader.readExact(size);
  if (body.length !== size) throw new AppError('SOURCE_CORRUPT', 'the archive is truncated');
  await skipPadding(reader, size);
  return body;
}

async function skipBody(reader: ByteReader, size: number): Promise<void> {
  let left = size;
  while (left > 0) {
    const chunk = await reader.readUpTo(Math.min(left, 1024 * 1024));
    if (chunk.length === 0) throw new AppError('SOURCE_CORRUPT', 'the archive is truncated');
    left -= chunk.length;
  }
  await skipPadding(reader, size);
}

async function skipPadding(reader: ByteReader, size: number): Promise<void> {
  const pad = blockPadding(size);
  if (pad === 0) return;
  const got = await reader.readExact(pad);
  if (got.length !== pad) throw new AppError('SOURCE_CORRUPT', 'the archive is truncated');
}
