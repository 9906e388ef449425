import { SseFramePages } from './sse-frame-pages.js';
import { encodeFrames, framesFrom, type FrameBatch } from './sse-frames.js';
import type { BuildEvent } from '../builds/build-event.js';
import type { EventLog } from '../builds/event-log.js';

/** Consecutive frames for one write: views into shared buffers, never copies. */
export interface FrameRun {
  chunks: Buffer[];
  bytes: number;
  /** Id of the last event in the run. */
  lastId: number;
  /** The run ends with the build's `result` event. */
  final: boolean;
}

export interface SseEventHubOptions {
  /** Bytes of a build's most recent frames kept in memory while it has followers. */
  windowBytes: number;
  /** Bytes per page of stored frames (for readers behind the window), about. */
  pageBytes: number;
  /** Events per page at most. */
  maxPageEvents: number;
  /** Bytes of stored-frame pages kept, over every build. */
  pageCacheBytes: number;
  /** Bytes per buffer of encoded frames: a reader's view keeps alive only the buffers it spans. */
  segmentBytes: number;
  /**
   * Bytes handed to followers' sockets at once, over every follower: each follower's write is
   * this shared by the number of followers, between `minWriteBytes` and what it asks for.
   */
  pendingBytes: number;
  minWriteBytes: number;
}

interface BuildChannel {
  wakers: Set<() => void>;
  unsubscribe: () => void;
  collected: BuildEvent[];
  flushScheduled: boolean;
  /** The latest batches, oldest first, at most `windowBytes` in all (the newest always kept). */
  window: FrameBatch[];
  windowBytes: number;
}

/**
 * The frames of builds' events for their SSE readers, each event encoded once however many
 * read it. A followed build has one EventLog subscription: the events stored during one turn
 * of the event loop are encoded together as one batch, kept in the build's window of recent
 * batches, and every follower is woken once to write what it lacks. Readers keep only their
 * position (the next event id): one behind the window reads pages of stored frames, which
 * are shared too. Nothing is ever queued per reader, so a slow reader costs nothing here.
 */
export class SseEventHub {
  private readonly channels = new Map<string, BuildChannel>();
  private readonly pages: SseFramePages;
  private followers = 0;

  constructor(
    private readonly events: EventLog,
    private readonly options: SseEventHubOptions,
  ) {
    if (!(options.windowBytes >= 0)) throw new RangeError('windowBytes must not be negative');
    if (!(options.segmentBytes > 0)) throw new RangeError('segmentBytes must be positive');
    if (!(options.minWriteBytes > 0 && options.pendingBytes >= options.minWriteBytes)) {
      throw new RangeError('pendingBytes must be at least minWriteBytes, which must be positive');
    }
    this.pages = new SseFramePages(events, {
      pageBytes: options.pageBytes,
      maxPageEvents: options.maxPageEvents,
      maxBytes: options.pageCacheBytes,
      segmentBytes: options.segmentBytes,
    });
  }

  /**
   * Calls `wake` once per batch of new events of the build from now on (from a later turn of
   * the event loop); returns the function to stop. Frames stored before this call are read
   * with {@link framesFrom} like the others.
   */
  follow(buildId: string, wake: () => void): () => void {
    let channel = this.channels.get(buildId);
    if (!channel) {
      const created: BuildChannel = {
        wakers: new Set(),
        collected: [],
        flushScheduled: false,
        unsubscribe: () => undefined,
        window: [],
        windowBytes: 0,
      };
      created.unsubscribe = this.events.subscribe(buildId, (event) => {
        created.collected.push(event);
        if (created.flushScheduled) return;
        created.flushScheduled = true;
        setImmediate(() => {
          this.flush(created);
        });
      });
      this.channels.set(buildId, created);
      channel = created;
    }
    const current = channel;
    // One entry per follower, even when two pass the same function.
    const entry = () => {
      wake();
    };
    current.wakers.add(entry);
    this.followers += 1;
    let following = true;
    return () => {
      if (!following) return;
      following = false;
      this.followers -= 1;
      current.wakers.delete(entry);
      if (current.wakers.size === 0 && this.channels.get(buildId) === current) {
        current.unsubscribe();
        current.collected = [];
        current.window = [];
        this.channels.delete(buildId);
      }
    };
  }

  /**
   * Bytes a follower that asks for `maxBytes` per write may have: the pending budget shared by
   * every follower, so what sockets hold back stays bounded however many follow.
   */
  writeBytes(maxBytes: number): number {
    const share = Math.floor(this.options.pendingBytes / Math.max(1, this.followers));
    return Math.min(maxBytes, Math.max(this.options.minWriteBytes, share));
  }

  /**
   * The frames of the build from event `fromId` on, about `maxBytes` of them (at least one
   * frame): from the live window when it holds `fromId`, else from the store (`fromStore`
   * skips the window: for a reader that must see what is stored but not yet announced).
   * Null when nothing from `fromId` on is available yet.
   */
  framesFrom(
    buildId: string,
    fromId: number,
    maxBytes: number,
    fromStore = false,
  ): FrameRun | null {
    const window = fromStore ? undefined : this.channels.get(buildId)?.window;
    const oldest = window?.[0];
    if (window !== undefined && oldest !== undefined && fromId >= oldest.firstId) {
      return this.fromWindow(window, fromId, maxBytes);
    }
    // Pages are small (a miss reads and encodes about what one write takes), so a run may
    // span several of them.
    return collectRun(fromId, maxBytes, (nextId) => this.pages.pageOf(buildId, nextId));
  }

  private fromWindow(window: FrameBatch[], fromId: number, maxBytes: number): FrameRun | null {
    // The first batch that reaches fromId (binary search: batches are in id order).
    let lo = 0;
    let hi = window.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((window[mid]?.lastId ?? Infinity) < fromId) lo = mid + 1;
      else hi = mid;
    }
    let next = lo;
    return collectRun(fromId, maxBytes, () => window[next++] ?? null);
  }

  private flush(channel: BuildChannel): void {
    channel.flushScheduled = false;
    const events = channel.collected;
    channel.collected = [];
    if (events.length === 0 || channel.wakers.size === 0) return;
    const batch = encodeFrames(events, this.options.segmentBytes);
    channel.window.push(batch);
    channel.windowBytes += batch.bytes;
    while (channel.windowBytes > this.options.windowBytes && channel.window.length > 1) {
      const dropped = channel.window.shift();
      channel.windowBytes -= dropped?.bytes ?? 0;
    }
    for (const wake of [...channel.wakers]) wake();
  }
}

/**
 * A run of frames from `fromId` on, up to about `maxBytes`, taken from the batches `nextBatch`
 * hands out in id order (given the id the run needs next); it ends at a batch it only partly
 * takes, at the final frame, or when no batch follows. Null when it took nothing.
 */
function collectRun(
  fromId: number,
  maxBytes: number,
  nextBatch: (nextId: number) => FrameBatch | null,
): FrameRun | null {
  const run: FrameRun = { chunks: [], bytes: 0, lastId: fromId - 1, final: false };
  while (run.bytes < maxBytes && !run.final) {
    const batch = nextBatch(run.lastId + 1);
    if (batch === null) break;
    const { chunks, bytes, lastId } = framesFrom(batch, run.lastId + 1, maxBytes - run.bytes);
    run.chunks.push(...chunks);
    run.bytes += bytes;
    run.lastId = lastId;
    run.final = batch.final && lastId === batch.lastId;
    if (lastId < batch.lastId) break;
  }
  return run.chunks.length === 0 ? null : run;
}
