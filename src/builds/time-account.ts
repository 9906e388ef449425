import {
  AFTER_FINISH_STEPS,
  type AfterFinishStep,
  type BuildTimeline,
  type HostPhase,
} from './build-timeline.js';
import { BUILD_PHASES, type BuildPhase } from '../../common/protocol/agent-messages.js';

/**
 * The phases of a time account, in the order a build goes through them: the host's, with its
 * `agent` window divided into the guest's phases and `agent_other`, the part of the window
 * the guest reported no phase for (the `start` message and build.json, the agent's wrap-up,
 * the result's trip over the channel).
 */
export const ACCOUNT_PHASES = [
  'upload',
  'queued',
  'token',
  'prepare',
  'vm_start',
  'boot',
  ...BUILD_PHASES,
  'agent_other',
  'teardown',
  'interrupted',
] as const;
export type AccountPhase = (typeof ACCOUNT_PHASES)[number];

/** How the host saw an agent window divided by the arrivals of the agent's phase messages. */
export const OBSERVED_PHASES = ['agent_setup', ...BUILD_PHASES] as const;
export type ObservedPhase = (typeof OBSERVED_PHASES)[number];

/** Where a build's seconds went (docs/contracts.md#timings). */
export interface TimeAccount {
  /** Seconds per phase that happened, in ACCOUNT_PHASES order. Each is ≥ 0. */
  phases: Partial<Record<AccountPhase, number>>;
  /**
   * Seconds from the upload's start to the terminal status; null while the build runs (the
   * phases then cover the time up to the start of the current one).
   */
  totalSeconds: number | null;
  /**
   * `totalSeconds` minus the sum of the phases: zero but for a host clock that stepped
   * backwards (a phase never counts negative), and for builds stored before the timeline.
   */
  unaccountedSeconds: number;
  /**
   * The agent windows as the host saw them, for comparison with the guest's figures: from
   * hello to the first `phase` message (`agent_setup`), then from each phase message to the
   * next, the last one running to the outcome (so it holds the agent's wrap-up and the
   * result's trip too). Sums to the windows exactly.
   */
  hostObserved: Partial<Record<ObservedPhase, number>>;
  /** Phases whose seconds are the guest's word, fitted into the host-observed window. */
  guestReported: BuildPhase[];
  /** The guest reported more time than the host observed; its figures were scaled down. */
  guestScaled: boolean;
  /** Seconds per step after the terminal status; null until they are done. */
  afterFinish: Partial<Record<AfterFinishStep, number>> | null;
  /** Built from figures stored before the timeline existed. */
  legacy: boolean;
}

/**
 * Accounts for a build's time from its timeline, every interval in whole milliseconds so the
 * phases add up to the total exactly: each host phase runs from its mark to the next (or to
 * `end`, the terminal status, when given). Inside an `agent` window the guest's seconds are
 * taken as reported when they fit; when they add up to more than the window (the host cannot
 * vouch for the guest's clock) they are scaled down to fill it, never past it.
 */
export function accountTime(timeline: BuildTimeline, end: number | null): TimeAccount {
  if (timeline.legacy !== undefined) return legacyAccount(timeline.legacy);
  const ms = new Map<AccountPhase, number>();
  const add = (phase: AccountPhase, value: number): void => {
    ms.set(phase, (ms.get(phase) ?? 0) + value);
  };
  const observedMs = new Map<ObservedPhase, number>();
  const guestReported = new Set<BuildPhase>();
  let guestScaled = false;
  const { marks } = timeline;
  for (let i = 0; i < marks.length; i += 1) {
    const mark = marks[i];
    if (mark === undefined) continue;
    const until = marks[i + 1]?.at ?? end;
    if (until === null) break;
    const window = Math.max(0, until - mark.at);
    if (mark.phase !== 'agent') {
      add(mark.phase satisfies HostPhase, window);
      continue;
    }
    for (const [phase, value] of observeAgentWindow(mark.at, until, mark.arrivals ?? [])) {
      observedMs.set(phase, (observedMs.get(phase) ?? 0) + value);
    }
    const split = splitAgentWindow(window, mark.guest ?? {});
    guestScaled ||= split.scaled;
    for (const [phase, value] of split.guest) {
      guestReported.add(phase);
      add(phase, value);
    }
    add('agent_other', split.other);
  }
  const first = marks[0]?.at;
  const totalMs = end === null || first === undefined ? null : end - first;
  const sumMs = [...ms.values()].reduce((a, b) => a + b, 0);
  const phases: Partial<Record<AccountPhase, number>> = {};
  for (const phase of ACCOUNT_PHASES) {
    const value = ms.get(phase);
    if (value !== undefined) phases[phase] = value / 1000;
  }
  const hostObserved: Partial<Record<ObservedPhase, number>> = {};
  for (const phase of OBSERVED_PHASES) {
    const value = observedMs.get(phase);
    if (value !== undefined) hostObserved[phase] = value / 1000;
  }
  return {
    phases,
    totalSeconds: totalMs === null ? null : totalMs / 1000,
    unaccountedSeconds: totalMs === null ? 0 : (totalMs - sumMs) / 1000,
    hostObserved,
    guestReported: BUILD_PHASES.filter((p) => guestReported.has(p)),
    guestScaled,
    afterFinish: afterFinishSeconds(timeline.afterFinish),
    legacy: false,
  };
}

/** Divides an agent window [from, until] (ms) at the arrivals of the agent's phase messages. */
function observeAgentWindow(
  from: number,
  until: number,
  arrivals: readonly { phase: BuildPhase; at: number }[],
): [ObservedPhase, number][] {
  const spans: [ObservedPhase, number][] = [];
  let current: ObservedPhase = 'agent_setup';
  let since = from;
  for (const arrival of arrivals) {
    const at = Math.min(Math.max(arrival.at, since), until);
    spans.push([current, at - since]);
    current = arrival.phase;
    since = at;
  }
  spans.push([current, Math.max(0, until - since)]);
  return spans;
}

/** Divides an agent window (ms) into the guest's phases (ms) and the rest. */
function splitAgentWindow(
  window: number,
  seconds: Partial<Record<BuildPhase, number>>,
): { guest: [BuildPhase, number][]; other: number; scaled: boolean } {
  const reported = BUILD_PHASES.flatMap((phase): [BuildPhase, number][] => {
    const value = seconds[phase];
    return value === undefined || !Number.isFinite(value)
      ? []
      : [[phase, Math.max(0, Math.round(value * 1000))]];
  });
  const sum = reported.reduce((a, [, v]) => a + v, 0);
  const scaled = sum > window;
  const guest = scaled
    ? reported.map(([phase, v]): [BuildPhase, number] => [phase, Math.floor((v * window) / sum)])
    : reported;
  const used = guest.reduce((a, [, v]) => a + v, 0);
  return { guest, other: window - used, scaled };
}

function afterFinishSeconds(
  steps: BuildTimeline['afterFinish'],
): Partial<Record<AfterFinishStep, number>> | null {
  if (steps === null) return null;
  const seconds: Partial<Record<AfterFinishStep, number>> = {};
  for (const step of AFTER_FINISH_STEPS) {
    const value = steps[step];
    if (value !== undefined) seconds[step] = value / 1000;
  }
  return seconds;
}

/** Old figures: the phases as stored, the gap to their total shown as unaccounted. */
function legacyAccount(legacy: Record<string, number>): TimeAccount {
  const phases: Partial<Record<AccountPhase, number>> = {};
  let sum = 0;
  for (const phase of ACCOUNT_PHASES) {
    const value = legacy[phase];
    if (value === undefined) continue;
    phases[phase] = value;
    sum += value;
  }
  const total = legacy.total ?? null;
  return {
    phases,
    totalSeconds: total,
    unaccountedSeconds: total === null ? 0 : Math.round((total - sum) * 1000) / 1000,
    hostObserved: {},
    guestReported: BUILD_PHASES.filter((p) => p in legacy),
    guestScaled: false,
    afterFinish: null,
    legacy: true,
  };
}
