import { describe, expect, it } from 'vitest';
import {
  attachGuestSeconds,
  markInterrupted,
  markPhase,
  newTimeline,
  notePhaseArrival,
  type BuildTimeline,
} from '../../src/builds/build-timeline.js';
import { accountTime } from '../../src/builds/time-account.js';
import { ManualClock } from '../helpers/manual-clock.js';

/** A new timeline whose upload took `uploadMs` on the manual clock. */
function timeline(clock: ManualClock, uploadMs: number): BuildTimeline {
  const start = clock.now().getTime();
  clock.advance(uploadMs);
  return newTimeline(start, clock.now().getTime());
}

function sum(phases: Partial<Record<string, number>>): number {
  return Object.values(phases).reduce<number>((a, b) => a + (b ?? 0), 0);
}

describe('accountTime', () => {
  it('accounts for every millisecond of a build, guest phases inside the agent window', () => {
    const clock = new ManualClock();
    const start = clock.now().getTime();
    const t = timeline(clock, 250);
    clock.advance(1000);
    for (const [phase, ms] of [
      ['token', 3],
      ['prepare', 120],
      ['vm_start', 40],
      ['boot', 6200],
      ['agent', 20_000],
      ['teardown', 310],
    ] as const) {
      markPhase(t, phase, clock.now().getTime());
      clock.advance(ms);
    }
    attachGuestSeconds(t, { extracting: 0.4, engine_start: 1.2, building: 12.5, pushing: 3.1 });
    const account = accountTime(t, clock.now().getTime());
    expect(account.phases).toEqual({
      upload: 0.25,
      queued: 1,
      token: 0.003,
      prepare: 0.12,
      vm_start: 0.04,
      boot: 6.2,
      extracting: 0.4,
      engine_start: 1.2,
      building: 12.5,
      pushing: 3.1,
      agent_other: 2.8,
      teardown: 0.31,
    });
    // In the order a build goes through them.
    expect(Object.keys(account.phases)).toEqual([
      'upload',
      'queued',
      'token',
      'prepare',
      'vm_start',
      'boot',
      'extracting',
      'engine_start',
      'building',
      'pushing',
      'agent_other',
      'teardown',
    ]);
    expect(account.totalSeconds).toBe((clock.now().getTime() - start) / 1000);
    expect(account.totalSeconds).toBe(27.923);
    expect(Math.abs(sum(account.phases) - 27.923)).toBeLessThan(1e-9);
    expect(account.unaccountedSeconds).toBe(0);
    expect(account.guestReported).toEqual(['extracting', 'engine_start', 'building', 'pushing']);
    expect(account.guestScaled).toBe(false);
    expect(account.afterFinish).toBeNull();
  });

  it('scales the guest figures down to the host-observed window, never past it', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    markPhase(t, 'agent', clock.now().getTime());
    clock.advance(10_000);
    // The guest claims 20 s in a 10 s window (a clock running fast, or a lie).
    attachGuestSeconds(t, { extracting: 5, building: 15 });
    markPhase(t, 'teardown', clock.now().getTime());
    clock.advance(100);
    const account = accountTime(t, clock.now().getTime());
    expect(account.guestScaled).toBe(true);
    expect(account.phases).toMatchObject({ extracting: 2.5, building: 7.5, agent_other: 0 });
    expect(account.totalSeconds).toBe(10.1);
    expect(account.unaccountedSeconds).toBe(0);
  });

  it('shows the agent window as the host saw the phase messages arrive', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    markPhase(t, 'agent', clock.now().getTime());
    clock.advance(2000);
    notePhaseArrival(t, 'extracting', clock.now().getTime());
    clock.advance(1000);
    notePhaseArrival(t, 'building', clock.now().getTime());
    clock.advance(30_000);
    attachGuestSeconds(t, { extracting: 0.9, building: 10 });
    markPhase(t, 'teardown', clock.now().getTime());
    // Outside an agent window an arrival is not the agent's (nothing to divide).
    notePhaseArrival(t, 'pushing', clock.now().getTime());
    const account = accountTime(t, clock.now().getTime());
    expect(account.hostObserved).toEqual({ agent_setup: 2, extracting: 1, building: 30 });
    // The guest says 10.9 s of 33 s: the rest is the window's agent_other.
    expect(account.phases).toMatchObject({ extracting: 0.9, building: 10, agent_other: 22.1 });
  });

  it('gives every millisecond of a window with no guest figures to agent_other', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    markPhase(t, 'agent', clock.now().getTime());
    clock.advance(4321);
    const account = accountTime(t, clock.now().getTime());
    expect(account.phases).toEqual({ upload: 0, queued: 0, agent_other: 4.321 });
    expect(account.guestReported).toEqual([]);
  });

  it('counts no phase negative when the host clock steps back, and shows the residue', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 1000);
    markPhase(t, 'token', clock.now().getTime() - 400);
    clock.advance(600);
    const account = accountTime(t, clock.now().getTime());
    expect(account.phases).toEqual({ upload: 1, queued: 0, token: 1 });
    expect(account.totalSeconds).toBe(1.6);
    expect(account.unaccountedSeconds).toBeCloseTo(-0.4, 9);
  });

  it('while the build runs, covers the time up to the current phase and gives no total', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 500);
    clock.advance(2000);
    markPhase(t, 'token', clock.now().getTime());
    clock.advance(7000);
    const account = accountTime(t, null);
    expect(account.phases).toEqual({ upload: 0.5, queued: 2 });
    expect(account.totalSeconds).toBeNull();
  });

  it('attaches guest figures only to the current attempt, and only when its agent said hello', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    markPhase(t, 'prepare', clock.now().getTime());
    markPhase(t, 'agent', clock.now().getTime());
    clock.advance(3000);
    attachGuestSeconds(t, { building: 2 });
    // A daemon shutdown, a restart, a second attempt whose VM never says hello.
    markInterrupted(t, clock.now().getTime(), false);
    clock.advance(60_000);
    markPhase(t, 'queued', clock.now().getTime());
    markPhase(t, 'prepare', clock.now().getTime());
    markPhase(t, 'boot', clock.now().getTime());
    clock.advance(5000);
    attachGuestSeconds(t, { building: 99 });
    const account = accountTime(t, clock.now().getTime());
    expect(account.phases).toMatchObject({
      building: 2,
      agent_other: 1,
      interrupted: 60,
      boot: 5,
    });
    expect(account.unaccountedSeconds).toBe(0);
  });

  it('after a crash counts the time from the last mark to the restart as interrupted', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    markPhase(t, 'boot', clock.now().getTime());
    clock.advance(90_000);
    markInterrupted(t, clock.now().getTime(), true);
    markPhase(t, 'queued', clock.now().getTime());
    const account = accountTime(t, clock.now().getTime());
    expect(account.phases).toMatchObject({ boot: 0, interrupted: 90 });
  });

  it('shows the after-finish steps in seconds once they are done', () => {
    const clock = new ManualClock();
    const t = timeline(clock, 0);
    t.afterFinish = { cache_commit: 1250, source_removal: 4 };
    expect(accountTime(t, clock.now().getTime()).afterFinish).toEqual({
      cache_commit: 1.25,
      source_removal: 0.004,
    });
  });

  it('shows figures stored before the timeline as they were, their gap as unaccounted', () => {
    const account = accountTime(
      {
        marks: [],
        afterFinish: null,
        legacy: {
          queued: 0.1,
          boot: 7.6,
          extracting: 0.5,
          building: 22,
          pushing: 0.4,
          total: 38.2,
        },
      },
      null,
    );
    expect(account.legacy).toBe(true);
    expect(account.phases).toEqual({
      queued: 0.1,
      boot: 7.6,
      extracting: 0.5,
      building: 22,
      pushing: 0.4,
    });
    expect(account.totalSeconds).toBe(38.2);
    expect(account.unaccountedSeconds).toBe(7.6);
  });
});
