import type { BuildPhase } from '../../common/protocol/agent-messages.js';

/**
 * Phases the host times on its own clock (docs/contracts.md#timings), in the order a build
 * goes through them. Each begins with a mark; it ends where the next mark begins.
 * `agent` is the window from the agent's hello to the decided outcome, which the guest's own
 * phase figures divide; `interrupted` is time the daemon was not running the build (a
 * shutdown or a crash until the restart re-queued it).
 */
export const HOST_PHASES = [
  'upload',
  'queued',
  'token',
  'prepare',
  'vm_start',
  'boot',
  'agent',
  'teardown',
  'interrupted',
] as const;
export type HostPhase = (typeof HOST_PHASES)[number];

/** Steps the manager runs once the build is terminal (its status and result already told). */
export const AFTER_FINISH_STEPS = ['cache_commit', 'source_removal'] as const;
export type AfterFinishStep = (typeof AFTER_FINISH_STEPS)[number];

/** The start of a host phase. */
export interface TimelineMark {
  phase: HostPhase;
  /** Milliseconds since the epoch, host clock. */
  at: number;
  /**
   * On an `agent` mark, once its attempt ended: seconds per guest phase, as the agent's result
   * reported them (or, without a result, as the host saw its phase messages arrive).
   */
  guest?: Partial<Record<BuildPhase, number>>;
  /** On an `agent` mark: when each of the agent's `phase` messages reached the host (ms). */
  arrivals?: { phase: BuildPhase; at: number }[];
}

/** Where a build's time went, as stored with the build (`timings_json`). */
export interface BuildTimeline {
  /** In the order taken; the first is when the upload began arriving. */
  marks: TimelineMark[];
  /** Milliseconds per after-finish step; null until they are done. */
  afterFinish: Partial<Record<AfterFinishStep, number>> | null;
  /** A build stored before the timeline existed: its seconds as they were (migration 0009). */
  legacy?: Record<string, number>;
}

/** The timeline of a build accepted at `acceptedAt` whose upload began at `uploadStartedAt`. */
export function newTimeline(uploadStartedAt: number, acceptedAt: number): BuildTimeline {
  return {
    marks: [
      { phase: 'upload', at: uploadStartedAt },
      { phase: 'queued', at: acceptedAt },
    ],
    afterFinish: null,
  };
}

/** Starts `phase` at `at`, ending the current one. */
export function markPhase(timeline: BuildTimeline, phase: HostPhase, at: number): void {
  timeline.marks.push({ phase, at });
}

/** When the latest mark of `phase` was taken, or null. */
export function lastMarkOf(timeline: BuildTimeline, phase: HostPhase): number | null {
  for (let i = timeline.marks.length - 1; i >= 0; i -= 1) {
    const mark = timeline.marks[i];
    if (mark?.phase === phase) return mark.at;
  }
  return null;
}

/** The agent's `phase` message for `phase` reached the host at `at`, inside its window. */
export function notePhaseArrival(timeline: BuildTimeline, phase: BuildPhase, at: number): void {
  const last = timeline.marks.at(-1);
  if (last?.phase !== 'agent') return;
  (last.arrivals ??= []).push({ phase, at });
}

/**
 * Gives the current attempt's `agent` window the guest's phase seconds. An attempt starts at
 * its `prepare` mark; without an `agent` mark since then (the agent never said hello) there
 * is no window, and nothing is attached.
 */
export function attachGuestSeconds(
  timeline: BuildTimeline,
  seconds: Partial<Record<BuildPhase, number>>,
): void {
  for (let i = timeline.marks.length - 1; i >= 0; i -= 1) {
    const mark = timeline.marks[i];
    if (mark === undefined || mark.phase === 'prepare') return;
    if (mark.phase === 'agent') {
      mark.guest = { ...seconds };
      return;
    }
  }
}

/**
 * The daemon stopped running the build (a shutdown, or a crash found by the restart at `at`):
 * from the last mark on, the time counts as `interrupted`. After a crash the host cannot know
 * how long the phase then running lasted, so that phase keeps only its start.
 */
export function markInterrupted(timeline: BuildTimeline, at: number, crashed: boolean): void {
  const last = timeline.marks.at(-1);
  if (last?.phase === 'interrupted') return;
  markPhase(timeline, 'interrupted', crashed && last !== undefined ? last.at : at);
}
