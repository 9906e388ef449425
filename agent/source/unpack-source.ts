import { createHash, type Hash } from 'node:crypto';
import {
  closeSync,
  constants,
  fchmodSync,
  futimesSync,
  linkSync,
  mkdirSync,
  openSync,
  symlinkSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { ArchiveLimits } from '../../common/archive/archive-limits.js';
import type { SourceEntry } from '../../common/archive/source-archive-policy.js';
import { SourceArchiveReader } from '../../common/archive/source-archive-reader.js';

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

/** The regular file being written while its data arrives. */
interface OpenFile {
  fd: number;
  hash: Hash;
  entry: SourceEntry & { kind: 'file' };
  left: number;
}

/**
 * Unpacks an (already decompressed) tar stream into `root`, an empty directory, under the one
 * archive policy the host already applied at upload (common/archive/source-archive-policy.ts):
 * the policy decides what each entry may be and which parents and replacements it takes; this
 * function only carries that out. The archive is read to its last byte (the end-of-archive
 * marker and what trails it are checked here too) and symlinks are resolved against the
 * finished tree before the result is returned. Files are created with O_EXCL|O_NOFOLLOW,
 * permission bits only (no setuid/setgid/sticky); every failure of the policy is an
 * ArchiveError with the same code the host answers with.
 *
 * The file system calls are synchronous on purpose: a source is thousands of small files, and
 * each promise-based call is a round trip through libuv's thread pool (five or more per file).
 * Under TCG those hand-offs, not the disk, made the unpack several times slower than
 * `tar -xzf`. Each call is short (at most one decompressed chunk written), so the event loop
 * still turns between chunks.
 */
export async function unpackSource(
  tar: Readable,
  root: string,
  limits: ArchiveLimits,
): Promise<UnpackResult> {
  const tree = new Map<string, UnpackedEntry>();
  const reader = new SourceArchiveReader(limits);
  let file: OpenFile | null = null;
  const at = (parts: readonly string[]): string => path.join(root, ...parts);

  const finishFile = (f: OpenFile): void => {
    file = null;
    try {
      fchmodSync(f.fd, fileMode(f.entry.mode));
      if (f.entry.mtime > 0) futimesSync(f.fd, f.entry.mtime, f.entry.mtime);
    } finally {
      closeSync(f.fd);
    }
    tree.set(f.entry.path, {
      type: 'file',
      path: f.entry.path,
      mode: fileMode(f.entry.mode),
      size: f.entry.size,
      sha256: f.hash.digest('hex'),
    });
  };

  const create = (entry: SourceEntry): void => {
    for (const parent of entry.newParents) {
      mkdirSync(path.join(root, parent), { mode: 0o755 });
      tree.set(parent, { type: 'dir', path: parent, mode: 0o755 });
    }
    if (entry.kind !== 'dir' && entry.replaces) {
      // unlink removes the name itself, never what a symlink points to.
      unlinkSync(at(entry.parts));
      tree.delete(entry.path);
    }
    switch (entry.kind) {
      case 'file': {
        const fd = openSync(
          at(entry.parts),
          constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
          fileMode(entry.mode),
        );
        const f: OpenFile = { fd, hash: createHash('sha256'), entry, left: entry.size };
        file = f;
        if (entry.size === 0) finishFile(f);
        return;
      }
      case 'dir':
        if (entry.parts.length === 0) return;
        if (!entry.exists) mkdirSync(at(entry.parts), { mode: 0o755 });
        tree.set(entry.path, { type: 'dir', path: entry.path, mode: dirMode(entry.mode) });
        return;
      case 'symlink':
        symlinkSync(entry.target, at(entry.parts));
        tree.set(entry.path, { type: 'symlink', path: entry.path, target: entry.target });
        return;
      case 'hardlink': {
        if (entry.target === entry.path) return;
        const target = tree.get(entry.target);
        if (target?.type !== 'file') throw new Error(`hardlink target ${entry.target} not written`);
        linkSync(at(entry.targetParts), at(entry.parts));
        tree.set(entry.path, { ...target, path: entry.path });
        return;
      }
    }
  };

  try {
    for await (const chunk of tar) {
      for (const event of reader.push(chunk as Buffer)) {
        if (event.kind === 'entry') {
          create(event.entry);
          continue;
        }
        const f = file as OpenFile | null;
        if (f === null) throw new Error('archive data outside a file');
        f.hash.update(event.chunk);
        writeAll(f.fd, event.chunk);
        f.left -= event.chunk.length;
        if (f.left === 0) finishFile(f);
      }
    }
    const summary = reader.end();
    const sorted = [...tree.values()].sort((a, b) => compareBytes(a.path, b.path));
    return {
      entries: sorted,
      treeSha256: treeDigest(sorted),
      unpackedBytes: summary.unpackedBytes,
    };
  } finally {
    const open = file as OpenFile | null;
    if (open !== null) {
      try {
        closeSync(open.fd);
      } catch {
        // already failing; the first error is the one reported
      }
    }
    tar.destroy();
  }
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

/** writeSync may write less than asked (a signal, a full disk reported later): loop. */
function writeAll(fd: number, chunk: Buffer): void {
  let done = 0;
  while (done < chunk.length) done += writeSync(fd, chunk, done, chunk.length - done);
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
