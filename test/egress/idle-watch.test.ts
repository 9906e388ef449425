import { describe, expect, it } from 'vitest';
import { IdleWatch } from '../../src/egress/idle-watch.js';
import { ManualClock } from '../helpers/manual-clock.js';

describe('IdleWatch', () => {
  it('fires once the quiet time reaches the limit', () => {
    const time = new ManualClock();
    let fired = 0;
    new IdleWatch(time, time, 1000, () => (fired += 1));
    time.advance(999);
    expect(fired).toBe(0);
    time.advance(1);
    expect(fired).toBe(1);
    time.advance(5000);
    expect(fired).toBe(1);
    expect(time.pending).toBe(0);
  });

  it('counts the quiet time from the last touch', () => {
    const time = new ManualClock();
    let fired = 0;
    const watch = new IdleWatch(time, time, 1000, () => (fired += 1));
    time.advance(800);
    watch.touch();
    time.advance(800);
    expect(fired).toBe(0);
    watch.touch();
    time.advance(999);
    expect(fired).toBe(0);
    time.advance(1);
    expect(fired).toBe(1);
  });

  it('keeps a single timer armed however often it is touched', () => {
    const time = new ManualClock();
    const watch = new IdleWatch(time, time, 1000, () => undefined);
    for (let i = 0; i < 100; i += 1) watch.touch();
    expect(time.pending).toBe(1);
  });

  it('never fires after stop, and stop can be called twice', () => {
    const time = new ManualClock();
    let fired = 0;
    const watch = new IdleWatch(time, time, 1000, () => (fired += 1));
    watch.stop();
    watch.stop();
    time.advance(2000);
    expect(fired).toBe(0);
    expect(time.pending).toBe(0);
  });
});
