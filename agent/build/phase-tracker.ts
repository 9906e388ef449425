import type { BuildPhase } from '../../common/protocol/agent-messages.js';
import type { Clock } from '../../common/time/clock.js';

/** Measures how long each phase lasted: a phase runs from its start to the next one's. */
export class PhaseTracker {
  private current: { phase: BuildPhase; since: number } | null = null;
  private readonly seconds: Partial<Record<BuildPhase, number>> = {};

  constructor(private readonly clock: Clock) {}

  /** Starts `phase` (ending the current one) and returns the start time in ms. */
  enter(phase: BuildPhase): number {
    const now = this.clock.now().getTime();
    this.close(now);
    this.current = { phase, since: now };
    return now;
  }

  /** Ends the current phase. */
  finish(): void {
    this.close(this.clock.now().getTime());
    this.current = null;
  }

  phaseSeconds(): Partial<Record<BuildPhase, number>> {
    return { ...this.seconds };
  }

  private close(now: number): void {
    if (!this.current) return;
    const s = Math.max(0, now - this.current.since) / 1000;
    this.seconds[this.current.phase] = (this.seconds[this.current.phase] ?? 0) + s;
  }
}
