import { ArchiveError, printable } from './archive-error.js';
import type { ArchiveLimits } from './archive-limits.js';
import type { TarHeader } from './tar-header.js';

/** Nodes of the tree the archive describes so far: names by component, never whole paths. */
type Node =
  | { kind: 'dir'; children: Map<string, Node> }
  | { kind: 'file' }
  | { kind: 'symlink'; target: string };

/** What creating an entry takes, beyond the entry itself. */
interface Placement {
  /** Components of the entry's path; [] for the root itself. */
  parts: string[];
  /** The entry's path (components joined by '/'); '' for the root. */
  path: string;
  /** Parent directories no earlier entry created, outermost first (paths as above). */
  newParents: string[];
}

/** An entry that passed the policy, with what the unpacker must do to create it. */
export type SourceEntry =
  | (Placement & { kind: 'file'; mode: number; size: number; mtime: number; replaces: boolean })
  | (Placement & { kind: 'dir'; mode: number; exists: boolean })
  | (Placement & { kind: 'symlink'; target: string; replaces: boolean })
  /** `target` is the path of an earlier regular file; equal to `path` it is a no-op. */
  | (Placement & { kind: 'hardlink'; target: string; targetParts: string[]; replaces: boolean });

/**
 * The one policy a source archive must follow, applied entry by entry by the host while the
 * upload streams in (src/builds/tar-inspector.ts) and by the guest while it unpacks
 * (agent/source/unpack-source.ts), so that everything the guest would refuse is refused at
 * upload, with the same code:
 * - names relative, without `..`, NUL or an empty name (SOURCE_UNSAFE_PATH), within
 *   `maxPathBytes` (SOURCE_PATH_TOO_LONG);
 * - regular files, directories, symlinks and hardlinks only (SOURCE_FORBIDDEN_ENTRY);
 * - nothing written through a symlink or under a file, no directory replacing a non-directory
 *   and no non-directory replacing a directory (SOURCE_UNSAFE_PATH);
 * - symlinks with a relative target that stays inside the root, checked lexically as they
 *   arrive and, once the archive is complete, by resolving them through the archive's own
 *   symlinks (SOURCE_BAD_LINK); hardlinks only to an earlier regular file (SOURCE_BAD_LINK);
 * - at most `maxEntries` entries and `maxUnpackedBytes` of file content.
 * Memory is bounded by the names seen: at most maxEntries × maxPathBytes.
 */
export class SourceArchivePolicy {
  private readonly root: Node & { kind: 'dir' } = { kind: 'dir', children: new Map() };
  private entryCount = 0;
  private unpacked = 0;

  constructor(private readonly limits: ArchiveLimits) {}

  get entries(): number {
    return this.entryCount;
  }

  get unpackedBytes(): number {
    return this.unpacked;
  }

  /** Checks the next entry and records it; throws an ArchiveError when it breaks the policy. */
  entry(header: TarHeader): SourceEntry {
    this.entryCount += 1;
    if (this.entryCount > this.limits.maxEntries) {
      throw new ArchiveError(
        'SOURCE_TOO_MANY_ENTRIES',
        `the source has more than ${this.limits.maxEntries} entries`,
        { limit: this.limits.maxEntries },
      );
    }
    const parts = this.components(header.name);
    const path = parts.join('/');
    switch (header.type) {
      case '0':
      case '\0':
      case '7': {
        this.nonRoot(parts);
        if (this.unpacked + header.size > this.limits.maxUnpackedBytes) {
          throw new ArchiveError(
            'SOURCE_UNPACKED_TOO_LARGE',
            `the unpacked source exceeds ${this.limits.maxUnpackedBytes} bytes`,
            { limit: this.limits.maxUnpackedBytes },
          );
        }
        this.unpacked += header.size;
        const { newParents, replaces } = this.place(parts, { kind: 'file' });
        return {
          kind: 'file',
          parts,
          path,
          newParents,
          replaces,
          mode: header.mode,
          size: header.size,
          mtime: header.mtime,
        };
      }
      case '5': {
        if (parts.length === 0) {
          return { kind: 'dir', parts, path, newParents: [], mode: header.mode, exists: true };
        }
        const newParents = this.parents(parts);
        const dir = this.parentOf(parts);
        const name = parts[parts.length - 1] ?? '';
        const existing = dir.children.get(name);
        if (existing !== undefined && existing.kind !== 'dir') {
          throw new ArchiveError(
            'SOURCE_UNSAFE_PATH',
            `directory "${printable(path)}" replaces a ${existing.kind}`,
          );
        }
        if (existing === undefined) dir.children.set(name, { kind: 'dir', children: new Map() });
        return {
          kind: 'dir',
          parts,
          path,
          newParents,
          mode: header.mode,
          exists: existing !== undefined,
        };
      }
      case '2': {
        this.nonRoot(parts);
        const target = header.linkName.toString('utf8');
        checkSymlinkTarget(path, parts.length - 1, target);
        const { newParents, replaces } = this.place(parts, { kind: 'symlink', target });
        return { kind: 'symlink', parts, path, newParents, replaces, target };
      }
      case '1': {
        this.nonRoot(parts);
        const targetParts = this.components(header.linkName);
        const targetPath = targetParts.join('/');
        if (this.lookup(targetParts)?.kind !== 'file') {
          throw new ArchiveError(
            'SOURCE_BAD_LINK',
            `hardlink "${printable(path)}" does not point to an earlier file`,
          );
        }
        const placed =
          targetPath === path
            ? { newParents: [], replaces: false }
            : this.place(parts, { kind: 'file' });
        return { kind: 'hardlink', parts, path, ...placed, target: targetPath, targetParts };
      }
      case '3':
      case '4':
      case '6':
        throw new ArchiveError(
          'SOURCE_FORBIDDEN_ENTRY',
          `"${printable(path)}" is a ${header.type === '6' ? 'fifo' : 'device node'}`,
        );
      default:
        throw new ArchiveError(
          'SOURCE_FORBIDDEN_ENTRY',
          `"${printable(path)}" has unsupported tar type "${printable(header.type)}"`,
        );
    }
  }

  /**
   * Called once the archive is complete: resolves every symlink through the finished tree,
   * following the archive's own symlinks (a lexical check alone misses `a -> .` plus
   * `b -> a/..`), and throws SOURCE_BAD_LINK when a resolution leaves the root or loops.
   */
  finish(): void {
    const walk = (dir: Node & { kind: 'dir' }, at: string[]): void => {
      for (const [name, node] of dir.children) {
        if (node.kind === 'dir') walk(node, [...at, name]);
        else if (node.kind === 'symlink') {
          const origin = [...at, name].join('/');
          this.resolveInside(at, node.target.split('/'), { origin, expansions: 0 });
        }
      }
    };
    walk(this.root, []);
  }

  /** A name's components: relative, no `..`, `.` and empty components dropped. */
  private components(raw: Buffer): string[] {
    if (raw.length > this.limits.maxPathBytes) {
      throw new ArchiveError(
        'SOURCE_PATH_TOO_LONG',
        `a path in the source is ${raw.length} bytes (limit ${this.limits.maxPathBytes})`,
        { limit: this.limits.maxPathBytes },
      );
    }
    const name = raw.toString('utf8');
    if (name === '') throw new ArchiveError('SOURCE_UNSAFE_PATH', 'an entry has an empty name');
    if (name.includes('\0')) throw new ArchiveError('SOURCE_UNSAFE_PATH', 'a path contains NUL');
    if (name.startsWith('/')) {
      throw new ArchiveError('SOURCE_UNSAFE_PATH', `absolute path "${printable(name)}"`);
    }
    const parts: string[] = [];
    for (const part of name.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') {
        throw new ArchiveError('SOURCE_UNSAFE_PATH', `path "${printable(name)}" contains ".."`);
      }
      parts.push(part);
    }
    return parts;
  }

  private nonRoot(parts: string[]): void {
    if (parts.length === 0) {
      throw new ArchiveError(
        'SOURCE_UNSAFE_PATH',
        'an entry other than a directory names the root',
      );
    }
  }

  /** Creates the missing parents of `parts`; refuses to go through anything but a directory. */
  private parents(parts: string[]): string[] {
    const created: string[] = [];
    let dir = this.root;
    for (let i = 0; i < parts.length - 1; i++) {
      const name = parts[i] ?? '';
      let next = dir.children.get(name);
      if (next === undefined) {
        next = { kind: 'dir', children: new Map() };
        dir.children.set(name, next);
        created.push(parts.slice(0, i + 1).join('/'));
      } else if (next.kind !== 'dir') {
        throw new ArchiveError(
          'SOURCE_UNSAFE_PATH',
          `"${printable(parts.join('/'))}" would be written through ${next.kind} "${printable(parts.slice(0, i + 1).join('/'))}"`,
        );
      }
      dir = next;
    }
    return created;
  }

  /** The directory holding `parts` (its parents exist: `parents` ran first). */
  private parentOf(parts: string[]): Node & { kind: 'dir' } {
    const dir = this.lookup(parts.slice(0, -1));
    if (dir?.kind !== 'dir') throw new Error('parent directory missing from the archive tree');
    return dir;
  }

  /** Records a non-directory; a later one may replace an earlier one, never a directory. */
  private place(
    parts: string[],
    node: Node & { kind: 'file' | 'symlink' },
  ): { newParents: string[]; replaces: boolean } {
    const newParents = this.parents(parts);
    const dir = this.parentOf(parts);
    const name = parts[parts.length - 1] ?? '';
    const existing = dir.children.get(name);
    if (existing?.kind === 'dir') {
      throw new ArchiveError(
        'SOURCE_UNSAFE_PATH',
        `"${printable(parts.join('/'))}" replaces a directory`,
      );
    }
    dir.children.set(name, node);
    return { newParents, replaces: existing !== undefined };
  }

  /** The node at `parts`, without following symlinks. */
  private lookup(parts: readonly string[]): Node | undefined {
    let node: Node = this.root;
    for (const name of parts) {
      if (node.kind !== 'dir') return undefined;
      const next = node.children.get(name);
      if (next === undefined) return undefined;
      node = next;
    }
    return node;
  }

  /**
   * Resolves `rest` from `base`. Like Linux path resolution (MAXSYMLINKS), at most 40 symlinks
   * are followed per resolution in total, so a crafted tree costs linear work, never exponential.
   */
  private resolveInside(
    base: string[],
    rest: string[],
    budget: { origin: string; expansions: number },
  ): string[] {
    const { origin } = budget;
    const cur = [...base];
    for (const c of rest) {
      if (c === '' || c === '.') continue;
      if (c === '..') {
        if (cur.length === 0) {
          throw new ArchiveError(
            'SOURCE_BAD_LINK',
            `symlink "${printable(origin)}" resolves outside the source`,
          );
        }
        cur.pop();
        continue;
      }
      cur.push(c);
      const hit = this.lookup(cur);
      if (hit?.kind === 'symlink') {
        budget.expansions += 1;
        if (budget.expansions > 40) {
          throw new ArchiveError('SOURCE_BAD_LINK', `symlink "${printable(origin)}" loops`);
        }
        cur.pop();
        const resolved = this.resolveInside(cur, hit.target.split('/'), budget);
        cur.length = 0;
        cur.push(...resolved);
      }
    }
    return cur;
  }
}

/** Symlink targets: non-empty, relative, and lexically inside the root from the link's directory. */
function checkSymlinkTarget(path: string, depth: number, target: string): void {
  if (target === '' || target.includes('\0')) {
    throw new ArchiveError('SOURCE_BAD_LINK', `symlink "${printable(path)}" has no valid target`);
  }
  if (target.startsWith('/')) {
    throw new ArchiveError(
      'SOURCE_BAD_LINK',
      `symlink "${printable(path)}" has an absolute target`,
    );
  }
  let level = depth;
  for (const c of target.split('/')) {
    if (c === '..') level--;
    else if (c !== '' && c !== '.') level++;
    if (level < 0) {
      throw new ArchiveError(
        'SOURCE_BAD_LINK',
        `symlink "${printable(path)}" points outside the source`,
      );
    }
  }
}
