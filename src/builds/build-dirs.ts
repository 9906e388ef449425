import { mkdir, readdir, rename, rm, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { syncPath } from '../storage/sync-path.js';

/** The upload's name while it streams; renamed to {@link SOURCE_NAME} once it is accepted. */
const PARTIAL_NAME = 'source.partial';
const SOURCE_NAME = 'source';

/**
 * The on-disk layout of builds: `<data>/builds/<id>/` holds `source.partial` while the upload
 * streams and `source` once the build is accepted. Directories are created, renamed into place
 * and removed only here, and only the BuildManager changes them (the backup only reads a
 * source), so the layout has one owner.
 */
export class BuildDirs {
  private readonly root: string;

  /** `dataDir` is config.server.dataDir; builds live in its `builds/` folder. */
  constructor(dataDir: string) {
    this.root = path.join(dataDir, 'builds');
  }

  /**
   * Creates the directory of a new build (0700) and returns where its upload is written. Fails
   * with EEXIST rather than reuse a directory: ids are fresh, so one already there is a bug.
   */
  async create(id: string): Promise<string> {
    await mkdir(this.root, { recursive: true, mode: 0o700 });
    await mkdir(this.dirOf(id), { mode: 0o700 });
    return path.join(this.dirOf(id), PARTIAL_NAME);
  }

  /**
   * Moves a complete, verified (and fsynced) upload to its final name and returns that path,
   * once the rename and the build's directory entry are durable: the build's directory and
   * `builds/` are synced, so an accepted build's source survives a crash.
   */
  async commit(id: string): Promise<string> {
    const sourcePath = this.sourcePath(id);
    await rename(path.join(this.dirOf(id), PARTIAL_NAME), sourcePath);
    await syncPath(this.dirOf(id));
    await syncPath(this.root);
    return sourcePath;
  }

  /** Where an accepted build's source lives (the backup copies it for unfinished builds). */
  sourcePath(id: string): string {
    return path.join(this.dirOf(id), SOURCE_NAME);
  }

  /**
   * Removes a build's directory and everything in it (missing is fine). The layout is known,
   * so the usual case is two calls (unlink the source, rmdir); a recursive rm, which lstats,
   * fails an rmdir, reads the directory and lstats each entry first, is the fallback for a
   * directory that holds anything else (an upload cut off as `source.partial`).
   */
  async remove(id: string): Promise<void> {
    const dir = this.dirOf(id);
    try {
      await unlink(path.join(dir, SOURCE_NAME));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) {
        await rm(dir, { recursive: true, force: true });
        return;
      }
    }
    try {
      await rmdir(dir);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      if (!isErrno(err, 'ENOTEMPTY') && !isErrno(err, 'EEXIST')) throw err;
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Removes every directory whose build is not kept: what an upload interrupted by a crash
   * (SIGKILL mid-stream) or a removal cut short leaves behind. Returns how many were removed.
   */
  async removeAllExcept(keep: (id: string) => boolean): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.root);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return 0;
      throw err;
    }
    let removed = 0;
    for (const name of names) {
      if (keep(name)) continue;
      await rm(path.join(this.root, name), { recursive: true, force: true });
      removed += 1;
    }
    return removed;
  }

  private dirOf(id: string): string {
    // Ids come from newBuildId() (b_ + base32); refuse anything that could name another path.
    if (!/^[A-Za-z0-9_-]+$/.test(id)) throw new Error(`not a build id: ${JSON.stringify(id)}`);
    return path.join(this.root, id);
  }
}

function isErrno(err: unknown, code: string): boolean {
  return (err as NodeJS.ErrnoException | null)?.code === code;
}
