import type { BuildEvent } from '../builds/build-event.js';

/**
 * The SSE frames of consecutive events of one build, encoded once for every reader. The
 * frames lie back to back in `segments`, buffers of about `segmentBytes` each (a frame is never
 * split, so one larger frame is a segment of its own); `offsets[i]` is where the frame of event
 * `firstId + i` starts counting over all segments (`offsets[n]` is the end) and `segmentOf[i]`
 * is the segment holding it. A reader that needs only some frames sends views of the segments
 * it needs, and such a view keeps only its segment alive, not the whole batch: a slow socket
 * pins about what it was handed, however large the batch.
 */
export interface FrameBatch {
  firstId: number;
  lastId: number;
  segments: Buffer[];
  /** Where each segment starts, counting over all segments. */
  segmentStarts: number[];
  offsets: number[];
  segmentOf: number[];
  /** Bytes of all frames. */
  bytes: number;
  /** The batch holds the build's `result` event (always its last event). */
  final: boolean;
}

/** The `data` of an event's frame (docs/contracts.md#build-events). */
function eventPayload(event: BuildEvent): string {
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
 * Encodes `events` (consecutive ids of one build, at least one) into segments of about
 * `segmentBytes`: one serialization per event and one allocation per segment.
 */
export function encodeFrames(events: readonly BuildEvent[], segmentBytes: number): FrameBatch {
  const first = events[0];
  const last = events.at(-1);
  if (first === undefined || last === undefined) throw new RangeError('no events to encode');
  if (!(segmentBytes > 0)) throw new RangeError('segmentBytes must be positive');
  const texts = events.map(sseFrame);
  const offsets: number[] = [0];
  const segmentOf: number[] = [];
  const segmentStarts: number[] = [0];
  let size = 0;
  for (const text of texts) {
    const length = Buffer.byteLength(text, 'utf8');
    const start = segmentStarts.at(-1) ?? 0;
    if (size > start && size - start + length > segmentBytes) segmentStarts.push(size);
    segmentOf.push(segmentStarts.length - 1);
    size += length;
    offsets.push(size);
  }
  const segments = segmentStarts.map((start, s) =>
    Buffer.allocUnsafe((segmentStarts[s + 1] ?? size) - start),
  );
  texts.forEach((text, i) => {
    const s = segmentOf[i] ?? 0;
    segments[s]?.write(text, (offsets[i] ?? 0) - (segmentStarts[s] ?? 0), 'utf8');
  });
  return {
    firstId: first.id,
    lastId: last.id,
    segments,
    segmentStarts,
    offsets,
    segmentOf,
    bytes: size,
    final: last.data.type === 'result',
  };
}

/**
 * Frames of `batch` from event `fromId` on, as views into its segments, cut after the first
 * frame that reaches `maxBytes` (a frame is never split); `lastId` is the last event in them.
 */
export function framesFrom(
  batch: FrameBatch,
  fromId: number,
  maxBytes: number,
): { chunks: Buffer[]; bytes: number; lastId: number } {
  const from = Math.max(0, fromId - batch.firstId);
  const start = batch.offsets[from] ?? batch.bytes;
  const count = batch.lastId - batch.firstId + 1;
  let to = from + 1;
  while (to < count && (batch.offsets[to] ?? 0) - start < maxBytes) to++;
  const end = batch.offsets[to] ?? batch.bytes;
  const chunks: Buffer[] = [];
  const firstSegment = batch.segmentOf[from] ?? batch.segments.length;
  const lastSegment = batch.segmentOf[to - 1] ?? -1;
  for (let s = firstSegment; s <= lastSegment; s++) {
    const segment = batch.segments[s];
    const segmentStart = batch.segmentStarts[s] ?? 0;
    if (segment === undefined) break;
    chunks.push(
      segment.subarray(
        Math.max(0, start - segmentStart),
        Math.min(segment.length, end - segmentStart),
      ),
    );
  }
  return { chunks, bytes: end - start, lastId: batch.firstId + to - 1 };
}
