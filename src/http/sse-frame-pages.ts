import { encodeFrames, type FrameBatch } from './sse-frames.js';
import type { EventLog } from '../builds/event-log.js';

export interface SseFramePagesOptions {
  /** Bytes of frames per page, about (the events read are sized by those seen so far). */
  pageBytes: number;
  /** Events read from the store per page at most. */
  maxPageEvents: number;
  /** Bytes of encoded pages kept; the least recently used go first. */
  maxBytes: number;
  /** Bytes per buffer of a page's frames (what one reader's view keeps alive, at most). */
  segmentBytes: number;
}

/** The complete pages of one build found so far: their id ranges, in id order, disjoint. */
interface BuildPages {
  firsts: number[];
  lasts: number[];
  /** Pages of the build in the cache. */
  cached: number;
  /** Frame bytes per event seen so far, to size the next read. */
  bytes: number;
  events: number;
}

/**
 * Stored events as SSE frames for the readers that are behind the live window (they joined
 * late, resumed with Last-Event-ID, or their socket is slower than the build). A page is
 * about `pageBytes` of frames, so one read for a reader the cache no longer serves costs
 * about what it writes, whatever the size of the events. A page's id range is fixed when it
 * is first read and kept while any page of its build is cached, so readers near the same
 * place share one read from the store and one encoding instead of each holding its own copy.
 * Bounded by bytes, least recently used first. A page that reached the end of what is stored
 * before it was full is served but neither kept nor fixed: it is read again as it grows.
 */
export class SseFramePages {
  private readonly pages = new Map<string, { buildId: string; page: FrameBatch }>();
  private readonly builds = new Map<string, BuildPages>();
  private bytes = 0;

  constructor(
    private readonly events: EventLog,
    private readonly options: SseFramePagesOptions,
  ) {
    if (!(options.pageBytes > 0)) throw new RangeError('pageBytes must be positive');
    if (!Number.isInteger(options.maxPageEvents) || options.maxPageEvents <= 0) {
      throw new RangeError('maxPageEvents must be a positive integer');
    }
    if (!(options.maxBytes >= 0)) throw new RangeError('maxBytes must not be negative');
  }

  /** The page holding event `id` of the build, from the store; null when it has no event from `id` on. */
  pageOf(buildId: string, id: number): FrameBatch | null {
    const build = this.builds.get(buildId);
    const p = build === undefined ? -1 : lastAtOrBefore(build.firsts, id);
    if (build !== undefined && p >= 0 && (build.lasts[p] ?? 0) >= id) {
      const first = build.firsts[p] ?? id;
      const key = `${buildId}:${first}`;
      const cached = this.pages.get(key);
      if (cached !== undefined) {
        this.pages.delete(key);
        this.pages.set(key, cached);
        return cached.page;
      }
      const last = build.lasts[p] ?? id;
      const page = this.encode(this.events.read(buildId, first - 1, last - first + 1));
      if (page === null) return null;
      this.keep(buildId, build, key, page);
      return page;
    }
    // A page of its own from `id`, up to the next known one.
    const next = build?.firsts[p + 1];
    const perEvent = build !== undefined && build.events > 0 ? build.bytes / build.events : 1024;
    let limit = Math.min(
      this.options.maxPageEvents,
      Math.max(1, Math.ceil(this.options.pageBytes / perEvent)),
    );
    if (next !== undefined) limit = Math.min(limit, next - id);
    const stored = this.events.read(buildId, id - 1, limit);
    const page = this.encode(stored);
    if (page === null) return null;
    const full =
      page.final ||
      page.bytes >= this.options.pageBytes ||
      stored.length === limit ||
      page.lastId + 1 === next;
    if (!full) return page;
    const pages = build ?? { firsts: [], lasts: [], cached: 0, bytes: 0, events: 0 };
    this.builds.set(buildId, pages);
    pages.firsts.splice(p + 1, 0, page.firstId);
    pages.lasts.splice(p + 1, 0, page.lastId);
    pages.bytes += page.bytes;
    pages.events += page.lastId - page.firstId + 1;
    this.keep(buildId, pages, `${buildId}:${page.firstId}`, page);
    return page;
  }

  private encode(stored: ReturnType<EventLog['read']>): FrameBatch | null {
    return stored.length === 0 ? null : encodeFrames(stored, this.options.segmentBytes);
  }

  private keep(buildId: string, build: BuildPages, key: string, page: FrameBatch): void {
    this.pages.set(key, { buildId, page });
    build.cached += 1;
    this.bytes += page.bytes;
    for (const [oldKey, old] of this.pages) {
      if (this.bytes <= this.options.maxBytes || old.page === page) break;
      this.pages.delete(oldKey);
      this.bytes -= old.page.bytes;
      const owner = this.builds.get(old.buildId);
      if (owner !== undefined && --owner.cached === 0) this.builds.delete(old.buildId);
    }
  }
}

/** The index of the last element of `sorted` at most `value`; -1 when there is none. */
function lastAtOrBefore(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((sorted[mid] ?? Infinity) <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}
