import type { Logger } from 'pino';

/** What a BlobPrefetcher needs. */
export interface BlobPrefetcherOptions<T> {
  /** Blobs of one image fetched at once. */
  perImage: number;
  /** Blobs fetched at once over every image. */
  total: number;
  /**
   * Fetches one blob, settling once it is stored or its download failed (or joined a download
   * already under way, or found it stored). Its rejection is logged, never thrown.
   */
  fetch: (item: T) => Promise<void>;
  /** Names an item in the log line of a failed prefetch. */
  describe: (item: T) => Record<string, unknown>;
  logger: Logger;
}

/**
 * Fetches an image's blobs in the background, at most `perImage` of one image and `total` in
 * all at once, so a client's later blob requests join a download already running or find the
 * blob stored. Every prefetch is owned here: its failure is logged (a client asking for that
 * blob gets its own answer), and `close()` stops starting new ones and waits for those running,
 * so none outlives the mirror. Safe to call `close()` twice.
 */
export class BlobPrefetcher<T> {
  private readonly o: BlobPrefetcherOptions<T>;
  private active = 0;
  /** Workers waiting for one of the `total` slots, first come first served. */
  private readonly waiting: (() => void)[] = [];
  private readonly workers = new Set<Promise<void>>();
  private closed = false;

  constructor(options: BlobPrefetcherOptions<T>) {
    if (!(Number.isInteger(options.perImage) && options.perImage > 0)) {
      throw new Error('a prefetch needs at least one blob at once per image');
    }
    if (!(Number.isInteger(options.total) && options.total >= options.perImage)) {
      throw new Error('the prefetch total must be at least its per-image limit');
    }
    this.o = options;
  }

  /** Prefetches running or waiting for a slot (for tests). */
  get pending(): number {
    return this.workers.size;
  }

  /** Starts fetching `items` (in order) in the background; nothing once closed. */
  prefetch(items: readonly T[]): void {
    if (this.closed || items.length === 0) return;
    const queue = [...items];
    for (let i = 0; i < Math.min(this.o.perImage, queue.length); i++) {
      const worker = this.work(queue);
      this.workers.add(worker);
      void worker.finally(() => {
        this.workers.delete(worker);
      });
    }
  }

  /** Starts no more prefetches and waits for those running (their downloads are the caller's to abort). */
  async close(): Promise<void> {
    this.closed = true;
    // Each waiter wakes holding a slot, which it gives back at once.
    for (const wake of this.waiting.splice(0)) {
      this.active += 1;
      wake();
    }
    await Promise.allSettled([...this.workers]);
  }

  /** One worker: takes the image's next item until none is left. Never rejects. */
  private async work(queue: T[]): Promise<void> {
    for (;;) {
      await this.slot();
      // Checked in the same tick as the fetch starts: close() cannot slip in between.
      const item = this.closed ? undefined : queue.shift();
      if (item === undefined) {
        this.release();
        return;
      }
      try {
        await this.o.fetch(item);
      } catch (err) {
        this.o.logger.debug({ err, ...this.o.describe(item) }, 'mirror: a blob prefetch failed');
      } finally {
        this.release();
      }
    }
  }

  /** Takes one of the `total` slots, waiting for one when all are taken. */
  private async slot(): Promise<void> {
    if (this.closed || this.active < this.o.total) {
      this.active += 1;
      return;
    }
    // Woken by release() (or close()) with the slot handed over: `active` already counts it.
    await new Promise<void>((resolve) => {
      this.waiting.push(resolve);
    });
  }

  /** Hands the slot to the worker waiting longest, else frees it. */
  private release(): void {
    const next = this.waiting.shift();
    if (next === undefined) this.active -= 1;
    else next();
  }
}
