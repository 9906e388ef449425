import type { Clock } from '../../src/time/clock.js';

/** A test clock that only moves when told to. */
export class RegistryFakeClock implements Clock {
  #now: number;

  constructor(start = new Date('2026-01-01T00:00:00Z')) {
    this.#now = start.getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  advanceSeconds(seconds: number): void {
    this.#now += seconds * 1000;
  }
}
