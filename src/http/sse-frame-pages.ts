import { encodeFrames, type FrameBatch } from './sse-frames.js';
import type { EventLog } from '../builds/event-log.js';

export interface SseFramePagesOptions {
  /** Events per page; page `p` of a build holds ids `p * pageEvents + 1` to `(p + 1) * pageEvents`. */
  pageEvents: number;
  /** Bytes of encoded pages kept; the least recently used go first. */
  maxBytes: number;
  /** Bytes per buffer of a page's frames (what one reader's view keeps alive, at most). */
  segmentBytes: number;
}

/**
 * Stored events as SSE frames for the readers that are behind the live window (they joined
 * late, resumed with Last-Event-ID, or their socket is slower than the build): pages at fixed
 * id boundaries, so readers near the same place share one read from the store and one
 * encoding instead of each holding its own copy. Bounded by bytes, least recently used first.
 * A page read before its range was complete is read again once a reader needs what it lacked.
 */
export class SseFramePages {
  private readonly pages = new Map<string, FrameBatch>();
  private bytes = 0;

  constructor(
    private readonly events: EventLog,
    private readonly options: SseFramePagesOptions,
  ) {
    if (!Number.isInteger(options.pageEvents) || options.pageEvents <= 0) {
      throw new RangeError('pageEvents must be a positive integer');
    }
    if (!(options.maxBytes >= 0)) throw new RangeError('maxBytes must not be negative');
  }

  /** The page holding event `id` of the build, from the store; null when it has no event from `id` on. */
  pageOf(buildId: string, id: number): FrameBatch | null {
    const index = Math.floor((id - 1) / this.options.pageEvents);
    const key = `${buildId}:${index}`;
    const cached = this.pages.get(key);
    if (cached !== undefined) {
      this.pages.delete(key);
      if (cached.lastId >= id) {
        this.pages.set(key, cached);
        return cached;
      }
      this.bytes -= cached.bytes;
    }
    const start = index * this.options.pageEvents;
    const stored = this.events.read(buildId, start, this.options.pageEvents);
    const last = stored.at(-1);
    if (last === undefined || last.id < id) return null;
    const page = encodeFrames(stored, this.options.segmentBytes);
    this.pages.set(key, page);
    this.bytes += page.bytes;
    for (const [oldKey, old] of this.pages) {
      if (this.bytes <= this.options.maxBytes || old === page) break;
      this.pages.delete(oldKey);
      this.bytes -= old.bytes;
    }
    return page;
  }
}
