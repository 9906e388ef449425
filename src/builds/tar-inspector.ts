import { isArchiveError } from '../../common/archive/archive-error.js';
import type { ArchiveLimits } from '../../common/archive/archive-limits.js';
import {
  SourceArchiveReader,
  type SourceArchiveSummary,
} from '../../common/archive/source-archive-reader.js';
import { AppError } from '../errors/app-error.js';

/**
 * Checks the upload's tar stream as it passes, under the same archive policy the guest
 * unpacks with (common/archive/source-archive-policy.ts), so that everything the guest would
 * refuse is refused here, before a VM boots. It never unpacks: it only reads headers (the
 * data is dropped). A violation throws an AppError carrying the policy's code (each one an
 * HTTP 4xx). Memory is bounded by one block plus one metadata header (≤ 1 MiB) plus the tree
 * of names seen (bounded by maxEntries × maxPathBytes).
 */
export class TarInspector {
  private readonly reader: SourceArchiveReader;

  constructor(limits: ArchiveLimits) {
    this.reader = new SourceArchiveReader(limits);
  }

  /** Feeds the next bytes of the (decompressed) tar stream. */
  push(data: Uint8Array): void {
    try {
      this.reader.push(data);
    } catch (err) {
      throw toAppError(err);
    }
  }

  /** Called at end of stream; throws for a truncated or otherwise refused archive. */
  end(): SourceArchiveSummary {
    try {
      return this.reader.end();
    } catch (err) {
      throw toAppError(err);
    }
  }
}

function toAppError(err: unknown): unknown {
  if (!isArchiveError(err)) return err;
  return new AppError(err.code, err.message, {
    cause: err,
    ...(err.limit === undefined ? {} : { details: { limit: err.limit } }),
  });
}
