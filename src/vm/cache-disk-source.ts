/** A build's own writable fork of its scope's cache disk, and what becomes of it. */
export interface CacheDiskFork {
  /** The fork's raw ext4 image, attached to the VM as the `kiln-cache` disk. */
  readonly path: string;
  /** True when the fork started from a committed disk (a warm build). */
  readonly hit: boolean;
  /**
   * Makes the fork the scope's committed disk; called only once the build is stored `ready`.
   * Resolves false when the disk was deleted or pruned meanwhile (the fork is then removed).
   */
  commit(): Promise<boolean>;
  /** Removes the fork; the committed disk stays as it was. */
  discard(): Promise<void>;
}

/**
 * Where VM attempts get cache disks from (implemented by src/caches/cache-disks.ts). The
 * tenant and scope come from the stored build, never from anything the guest says.
 */
export interface CacheDiskSource {
  /** `sizeBytes` applies only when the scope has no disk yet; null: the operator's default. */
  fork(
    tenant: string,
    scope: string,
    buildId: string,
    sizeBytes: number | null,
  ): Promise<CacheDiskFork>;
  /** Percent of the disk past which the engine in the guest prunes its state. */
  readonly gcThresholdPercent: number;
  /**
   * At start, with no build running: removes every fork a previous daemon left (its builds
   * never finished, so none may be committed) and disk files no row names.
   */
  recover(): Promise<{ removedForks: number; removedFiles: number }>;
}
