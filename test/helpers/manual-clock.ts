import type { Clock } from '../../common/time/clock.js';
import type { Scheduler } from '../../src/time/scheduler.js';

/**
 * The one test clock: a `Clock` and `Scheduler` that stand still until the test calls
 * `advance`, which moves time forward and fires the timers that fall due, in order.
 */
export class ManualClock implements Clock, Scheduler {
  private ms: number;
  private timers: { at: number; callback: () => void; cancelled: boolean }[] = [];
  private armedWaiters: { count: number; resolve: () => void }[] = [];

  /** `start` is milliseconds since the epoch. */
  constructor(start = Date.parse('2026-01-01T00:00:00Z')) {
    this.ms = start;
  }

  now(): Date {
    return new Date(this.ms);
  }

  setTimeout(callback: () => void, ms: number): () => void {
    const timer = { at: this.ms + ms, callback, cancelled: false };
    this.timers.push(timer);
    const armed = this.pending;
    this.armedWaiters = this.armedWaiters.filter((w) => {
      if (armed < w.count) return true;
      w.resolve();
      return false;
    });
    return () => {
      timer.cancelled = true;
    };
  }

  /** Moves time forward by `ms`, firing due timers in order. */
  advance(ms: number): void {
    const target = this.ms + ms;
    for (;;) {
      const due = this.timers
        .filter((t) => !t.cancelled && t.at <= target)
        .sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      due.cancelled = true;
      this.ms = due.at;
      due.callback();
    }
    this.ms = target;
    this.timers = this.timers.filter((t) => !t.cancelled);
  }

  /**
   * Resolves once at least `count` timers are armed: for code that arms its timers after
   * awaiting something the test cannot see (a process start, a file write).
   */
  whenArmed(count = 1): Promise<void> {
    if (this.pending >= count) return Promise.resolve();
    return new Promise((resolve) => {
      this.armedWaiters.push({ count, resolve });
    });
  }

  /** Timers still armed. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }
}
