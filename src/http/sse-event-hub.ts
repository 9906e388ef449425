import type { BuildEvent } from '../builds/build-event.js';
import type { EventLog } from '../builds/event-log.js';

/**
 * The SSE frames of consecutive events of one build, encoded once for every follower:
 * `frames` holds them back to back, `offsets[i]` is where the frame of event `firstId + i`
 * starts, so a follower that already has some of them sends the rest as a view, not a copy.
 */
export interface FrameBatch {
  firstId: number;
  lastId: number;
  frames: Buffer;
  offsets: number[];
  /** The batch holds the build's `result` event (always its last event). */
  final: boolean;
}

/** The `data` of an event's frame (docs/contracts.md#build-events). */
export function eventPayload(event: BuildEvent): string {
  const { type: _type, ...rest } = event.data;
  return JSON.stringify({ build_id: event.buildId, at: event.createdAt.toISOString(), ...rest });
}

/**
 * One event as an SSE frame (WHATWG HTML, "Server-sent events": `event`, `data`, `id`
 * fields, a blank line). The payload is JSON, so it has no line break to split on.
 */
export function sseFrame(event: BuildEvent): string {
  return `event: ${event.data.type}\ndata: ${eventPayload(event)}\nid: ${event.id}\n\n`;
}

/** The frames of `batch` from event `fromId` on, as a view into the shared buffer. */
export function framesFrom(batch: FrameBatch, fromId: number): Buffer {
  const offset = batch.offsets[fromId - batch.firstId] ?? batch.frames.length;
  return batch.frames.subarray(offset);
}

type Follower = (batch: FrameBatch) => void;

interface BuildChannel {
  followers: Set<Follower>;
  unsubscribe: () => void;
  collected: BuildEvent[];
  flushScheduled: boolean;
}

/**
 * Fans a build's live events out to its SSE followers: one EventLog subscription per build
 * while it has followers, the events stored during one turn of the event loop collected and
 * encoded once (one serialization and one buffer per batch, however many follow), then handed
 * to every follower on the next turn. A follower decides itself whether a batch continues
 * what it sent; when not (it joined late, or fell behind), it reads from the store instead.
 */
export class SseEventHub {
  private readonly channels = new Map<string, BuildChannel>();

  constructor(private readonly events: EventLog) {}

  /** Hands `follower` every batch of the build from now on; returns the function to stop. */
  follow(buildId: string, follower: Follower): () => void {
    let channel = this.channels.get(buildId);
    if (!channel) {
      const created: BuildChannel = {
        followers: new Set(),
        collected: [],
        flushScheduled: false,
        unsubscribe: () => undefined,
      };
      created.unsubscribe = this.events.subscribe(buildId, (event) => {
        created.collected.push(event);
        if (created.flushScheduled) return;
        created.flushScheduled = true;
        setImmediate(() => {
          this.flush(created);
        });
      });
      this.channels.set(buildId, created);
      channel = created;
    }
    const current = channel;
    current.followers.add(follower);
    return () => {
      current.followers.delete(follower);
      if (current.followers.size === 0 && this.channels.get(buildId) === current) {
        current.unsubscribe();
        current.collected = [];
        this.channels.delete(buildId);
      }
    };
  }

  private flush(channel: BuildChannel): void {
    channel.flushScheduled = false;
    const events = channel.collected;
    channel.collected = [];
    const first = events[0];
    const last = events.at(-1);
    if (first === undefined || last === undefined || channel.followers.size === 0) return;
    const parts = events.map((e) => Buffer.from(sseFrame(e), 'utf8'));
    const offsets: number[] = [];
    let at = 0;
    for (const part of parts) {
      offsets.push(at);
      at += part.length;
    }
    const batch: FrameBatch = {
      firstId: first.id,
      lastId: last.id,
      frames: Buffer.concat(parts, at),
      offsets,
      final: last.data.type === 'result',
    };
    for (const follower of [...channel.followers]) follower(batch);
  }
}
