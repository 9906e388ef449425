import type { Logger } from 'pino';
import type { BlobStore } from './blob-store.js';
import { parseDigest } from './digest.js';
import { parseManifest } from './manifest-document.js';
import type { RegistryStore } from './registry-store.js';
import type { Clock } from '../../common/time/clock.js';

/** What one sweep removed. */
export interface SweepReport {
  removedBlobs: number;
  removedBytes: number;
}

/**
 * Garbage collection of blobs no stored manifest references any more (mark and sweep, as
 * Distribution's `garbage-collect`, but online). Mark: every digest any manifest names (an
 * image's config and layers; an index's entries, which may be blobs). Sweep: every blob that is
 * not marked, untouched for the grace period and not being read loses its rows and then its
 * file.
 *
 * Why it is safe against pushes and pulls in flight: the grace period runs from the blob's
 * `touched_at`, which the store renews whenever it finds the blob for a client (a HEAD before a
 * push skips the upload, a mount, the manifest PUT's own check) and when an upload is
 * committed; the check and the row deletion are one transaction, so a client that has been
 * told a blob exists can push the manifest naming it for a whole grace period. A blob whose
 * file is open for reading, or that is arriving (an upload or mirror download between its
 * rename and its rows), is skipped; an arrival of a digest being removed waits for the
 * removal, then puts its file back.
 */
export class BlobCollector {
  constructor(
    private readonly options: {
      store: RegistryStore;
      blobs: BlobStore;
      clock: Clock;
      /** Seconds a blob must have gone untouched before it may be removed. */
      graceSeconds: number;
      logger: Logger;
    },
  ) {
    if (!(options.graceSeconds >= 0)) throw new Error('GC grace period must not be negative');
  }

  /** One mark-and-sweep pass. */
  async sweep(): Promise<SweepReport> {
    const { store, logger } = this.options;
    const cutoff = this.graceCutoff();
    const referenced = new Set<string>();
    for (const { mediaType, content } of store.manifestContents()) {
      try {
        const doc = parseManifest(content, mediaType);
        for (const d of doc.blobs) referenced.add(d);
        for (const d of doc.manifests) referenced.add(d);
      } catch (err) {
        // A manifest the registry once accepted but cannot read now: keep everything.
        logger.warn({ err }, 'registry gc: a stored manifest cannot be parsed; sweep skipped');
        return { removedBlobs: 0, removedBytes: 0 };
      }
    }
    const candidates = store.untouchedBlobs(cutoff).filter((b) => !referenced.has(b.digest));
    const { removedBlobs, removedBytes } = await this.removeUntouched(candidates, cutoff);
    if (removedBlobs > 0) logger.info({ removedBlobs, removedBytes }, 'registry gc: blobs removed');
    return { removedBlobs, removedBytes };
  }

  /** The cutoff of the grace period now: blobs touched since are kept. */
  graceCutoff(): Date {
    return new Date(this.options.clock.now().getTime() - this.options.graceSeconds * 1000);
  }

  /**
   * Removes each of `candidates` (blobs the caller found unreferenced) that is not being read
   * or arriving and was not touched since `cutoff`; mirror eviction uses it for the blobs its
   * evicted manifests left unreferenced.
   */
  async removeUntouched(
    candidates: readonly { digest: string; size: number }[],
    cutoff: Date,
  ): Promise<SweepReport> {
    const { store, blobs } = this.options;
    let removedBlobs = 0;
    let removedBytes = 0;
    for (const { digest, size } of candidates) {
      const parsed = parseDigest(digest);
      // Check, rows and the removal's registration in one tick: an arrival waits for it.
      if (blobs.isBusy(parsed)) continue;
      if (!store.removeBlobIfUntouched(digest, cutoff)) continue;
      await blobs.remove(parsed);
      removedBlobs += 1;
      removedBytes += size;
    }
    return { removedBlobs, removedBytes };
  }
}
