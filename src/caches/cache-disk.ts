/** One persistent cache disk, as the API and the metrics see it. */
export interface CacheDisk {
  tenant: string;
  scope: string;
  /** Apparent size of the disk (its filesystem's size), fixed when the disk was created. */
  sizeBytes: number;
  /** Bumped by every delete and prune: a fork of an older generation is never committed. */
  generation: number;
  createdAt: Date;
  /** When a build last committed its fork; null while the disk has never been committed. */
  committedAt: Date | null;
  /** The build whose fork is the committed disk. */
  committedBuildId: string | null;
  /** File name (inside the scope's directory) of the committed disk; null until the first commit. */
  committedFile: string | null;
  /** The last build that was handed a fork of this disk, and when. */
  lastBuildId: string | null;
  lastBuildAt: Date | null;
}
