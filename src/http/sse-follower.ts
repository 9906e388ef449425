import type { SseEventHub } from './sse-event-hub.js';
import type { SseSink } from './sse-sink.js';

export interface SseFollowerOptions {
  hub: SseEventHub;
  buildId: string;
  /** The last event id the client has (0: none); it gets every event after it. */
  lastId: number;
  /** Stay open for new events until the `result` event (else send what is stored and end). */
  follow: boolean;
  /** Bytes of frames per write at most (one frame more at worst). */
  writeBytes: number;
  heartbeatMs: number;
  /** A heartbeat frame (an `event: heartbeat` without id). */
  heartbeat: () => Buffer;
  /** The build is terminal: no event will be stored after those already there. */
  isFinished: () => boolean;
  onError: (err: unknown) => void;
}

/**
 * One client of GET /builds/:id/events. It keeps only its position, the next event id, and
 * writes from there whenever its socket can take more: at once, when the hub announces new
 * events (everything it lacks in one write, so one socket write per follower per turn of the
 * event loop, however many events that turn stored), and on `drain`. What it writes are
 * views of frames the hub encoded once for all readers, from the live window or, when it is
 * further behind, from shared pages of stored frames, so a slow client holds at most one
 * write's worth and loses nothing: it just reads on from where it is.
 */
export class SseFollower {
  private nextId: number;
  private sink: SseSink | null = null;
  private blocked = false;
  /** Drains seen so far: a write that answers false after a drain came during it is not blocked. */
  private drains = 0;
  private pumping = false;
  private done = false;
  /** Ask whether the build ended the next time nothing is left to send. */
  private checkEnd = true;
  /** The build ended: read only the store, which has every event the hub may not have announced yet. */
  private storeOnly: boolean;
  private stopFollowing: () => void = () => undefined;
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly options: SseFollowerOptions) {
    this.nextId = options.lastId + 1;
    this.storeOnly = !options.follow;
  }

  /** Starts sending to `sink`. */
  start(sink: SseSink): void {
    this.sink = sink;
    if (this.options.follow) {
      this.stopFollowing = this.options.hub.follow(this.options.buildId, () => {
        this.pump();
      });
      this.timer = setInterval(() => {
        this.beat();
      }, this.options.heartbeatMs);
    }
    this.pump();
  }

  /** The sink's socket took what was waiting. */
  drained(): void {
    this.drains += 1;
    this.blocked = false;
    this.pump();
  }

  /** The client went away: stop, keep nothing. */
  closed(): void {
    this.stop();
  }

  private pump(): void {
    const sink = this.sink;
    if (sink === null || this.pumping || this.done || this.blocked) return;
    this.pumping = true;
    try {
      for (;;) {
        const { hub, buildId } = this.options;
        const writeBytes = hub.writeBytes(this.options.writeBytes);
        let run = hub.framesFrom(buildId, this.nextId, writeBytes, this.storeOnly);
        if (run === null && !this.storeOnly && this.checkEnd) {
          // Checked only when caught up and then once per heartbeat: a finished build's
          // `result` comes through the hub and ends the stream; this covers resuming after it.
          this.checkEnd = false;
          if (this.options.isFinished()) {
            this.storeOnly = true;
            run = hub.framesFrom(buildId, this.nextId, writeBytes, true);
          }
        }
        if (run === null) {
          if (this.storeOnly) this.finish();
          return;
        }
        const drains = this.drains;
        const ok = sink.write(run.chunks);
        this.nextId = run.lastId + 1;
        if (run.final) {
          this.finish();
          return;
        }
        // A drain during the write (a web stream's pull runs inside enqueue) was ignored by
        // pump's guard: blocking now would wait for a drain that already came.
        if (!ok && this.drains === drains) {
          this.blocked = true;
          return;
        }
      }
    } catch (err) {
      this.stop();
      sink.destroy();
      this.options.onError(err);
    } finally {
      this.pumping = false;
    }
  }

  private beat(): void {
    if (this.done) return;
    this.checkEnd = true;
    const drains = this.drains;
    if (!this.blocked && this.sink !== null && !this.sink.write([this.options.heartbeat()])) {
      if (this.drains === drains) this.blocked = true;
    }
    this.pump();
  }

  private finish(): void {
    this.stop();
    this.sink?.end();
  }

  private stop(): void {
    if (this.done) return;
    this.done = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.stopFollowing();
  }
}
