import type { BuildEvent, BuildEventData } from './build-event.js';
import type { BuildStore, TransitionEventData } from './build-store.js';
import type { Build } from './build.js';
import type { Clock } from '../../common/time/clock.js';

type Listener = (event: BuildEvent) => void;

/**
 * Build events (docs/contracts.md#build-events): every event is stored in SQLite first and only
 * then announced, to each subscriber with the event itself (the same object for all of them,
 * so the SSE hub encodes it once). A subscriber keeps only what it chooses to: the store has
 * every event, so one that falls behind re-reads from its last id and nothing is dropped.
 */
export class EventLog {
  private readonly listeners = new Map<string, Set<Listener>>();

  constructor(
    private readonly store: BuildStore,
    private readonly clock: Clock,
    private readonly maxLogBytes: number,
  ) {}

  append(buildId: string, data: TransitionEventData): BuildEvent {
    const event = this.store.appendEvent(buildId, data, this.clock.now());
    this.notify(event);
    return event;
  }

  /** Appends a log chunk under the per-build cap (one truncation marker past it). */
  appendLog(buildId: string, data: Extract<BuildEventData, { type: 'log' }>): void {
    const stored = this.store.appendLog(buildId, data, this.clock.now(), this.maxLogBytes);
    for (const event of stored) this.notify(event);
  }

  read(buildId: string, afterId: number, limit: number): BuildEvent[] {
    return this.store.eventsAfter(buildId, afterId, limit);
  }

  /** Calls `listener` with each new event of the build, once stored; returns the unsubscribe function. */
  subscribe(buildId: string, listener: Listener): () => void {
    let set = this.listeners.get(buildId);
    if (!set) {
      set = new Set();
      this.listeners.set(buildId, set);
    }
    set.add(listener);
    return () => {
      const current = this.listeners.get(buildId);
      current?.delete(listener);
      if (current?.size === 0) this.listeners.delete(buildId);
    };
  }

  private notify(event: BuildEvent): void {
    const set = this.listeners.get(event.buildId);
    if (!set) return;
    for (const listener of [...set]) listener(event);
  }

  /**
   * Stores a new build's row and its first events in one transaction, then announces them:
   * nothing of the build is observable until both are committed.
   */
  appendWithInsert(build: Build, data: readonly TransitionEventData[]): BuildEvent[] {
    const stored = this.store.insertWithEvents(build, data, this.clock.now());
    for (const event of stored) this.notify(event);
    return stored;
  }

  /**
   * Saves a build's row and appends the events of its transition in one transaction (one
   * commit instead of one per write), then announces them: a status and the events that tell
   * it are stored together before anyone hears of either, or, on an error, neither is.
   */
  appendWithUpdate(build: Build, data: readonly TransitionEventData[]): BuildEvent[] {
    const stored = this.store.updateWithEvents(build, data, this.clock.now());
    for (const event of stored) this.notify(event);
    return stored;
  }
}
