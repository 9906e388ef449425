import type { BuildEvent } from '../builds/build-event.js';

/**
 * The SSE frames of consecutive events of one build, encoded once for every reader: `frames`
 * holds them back to back and `offsets[i]` is where the frame of event `firstId + i` starts
 * (`offsets[n]` is the end), so a reader that needs only some of them sends a view, not a copy.
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

/**
 * Encodes `events` (consecutive ids of one build, at least one) into one buffer: one
 * serialization per event and one allocation per batch.
 */
export function encodeFrames(events: readonly BuildEvent[]): FrameBatch {
  const first = events[0];
  const last = events.at(-1);
  if (first === undefined || last === undefined) throw new RangeError('no events to encode');
  const texts = events.map(sseFrame);
  const offsets: number[] = [0];
  let size = 0;
  for (const text of texts) {
    size += Buffer.byteLength(text, 'utf8');
    offsets.push(size);
  }
  const frames = Buffer.allocUnsafe(size);
  texts.forEach((text, i) => frames.write(text, offsets[i] ?? 0, 'utf8'));
  return {
    firstId: first.id,
    lastId: last.id,
    frames,
    offsets,
    final: last.data.type === 'result',
  };
}

/**
 * Frames of `batch` from event `fromId` on, as a view into its buffer, cut after the first
 * frame that reaches `maxBytes` (a frame is never split); `lastId` is the last event in it.
 */
export function framesFrom(
  batch: FrameBatch,
  fromId: number,
  maxBytes: number,
): { frames: Buffer; lastId: number } {
  const from = Math.max(0, fromId - batch.firstId);
  const start = batch.offsets[from] ?? batch.frames.length;
  const count = batch.lastId - batch.firstId + 1;
  let to = from + 1;
  while (to < count && (batch.offsets[to] ?? 0) - start < maxBytes) to++;
  return {
    frames: batch.frames.subarray(start, batch.offsets[to] ?? batch.frames.length),
    lastId: batch.firstId + to - 1,
  };
}
