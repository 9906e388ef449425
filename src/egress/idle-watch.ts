import type { Clock } from '../../common/time/clock.js';
import type { Scheduler } from '../time/scheduler.js';

/**
 * Calls `onIdle` once nothing has called `touch()` for `idleMs`. One timer at a time rather
 * than one per chunk: when it fires early (there was activity since it was armed) it is
 * re-armed for the remainder, so a busy connection costs a clock read per chunk, not a timer.
 */
export class IdleWatch {
  private last: number;
  private cancel: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly clock: Clock,
    private readonly scheduler: Scheduler,
    private readonly idleMs: number,
    private readonly onIdle: () => void,
  ) {
    this.last = clock.now().getTime();
    this.arm(idleMs);
  }

  /** Notes activity now. */
  touch(): void {
    this.last = this.clock.now().getTime();
  }

  /** Stops watching; `onIdle` will not be called. Safe to call twice. */
  stop(): void {
    this.stopped = true;
    this.cancel?.();
    this.cancel = undefined;
  }

  private arm(ms: number): void {
    this.cancel = this.scheduler.setTimeout(() => {
      if (this.stopped) return;
      const quiet = this.clock.now().getTime() - this.last;
      if (quiet >= this.idleMs) {
        this.stopped = true;
        this.onIdle();
      } else {
        this.arm(this.idleMs - quiet);
      }
    }, ms);
  }
}
