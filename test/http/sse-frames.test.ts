import { describe, expect, it } from 'vitest';
import type { BuildEvent } from '../../src/builds/build-event.js';
import { encodeFrames, framesFrom, sseFrame } from '../../src/http/sse-frames.js';

const at = new Date('2026-01-02T03:04:05.000Z');

function logEvent(id: number, text: string): BuildEvent {
  return {
    buildId: 'b1',
    id,
    data: { type: 'log', stream: 'stdout', data: text, at: at.toISOString() },
    createdAt: at,
  };
}

describe('encodeFrames', () => {
  // Frames of 1 to 300 bytes of text, some of them multi-byte, some larger than a segment.
  const events = Array.from({ length: 40 }, (_, i) =>
    logEvent(i + 1, `${'é'.repeat(i % 3)}${'x'.repeat((i * 37) % 300)}`),
  );
  const whole = events.map(sseFrame).join('');

  it('lays frames back to back in segments of at most the given bytes, a larger frame alone', () => {
    const batch = encodeFrames(events, 256);
    expect(Buffer.concat(batch.segments).toString('utf8')).toBe(whole);
    expect(batch.bytes).toBe(Buffer.byteLength(whole));
    for (const [s, segment] of batch.segments.entries()) {
      const frames = batch.segmentOf.filter((of) => of === s).length;
      expect(frames).toBeGreaterThan(0);
      if (frames > 1) expect(segment.length).toBeLessThanOrEqual(256);
    }
  });

  it('hands out views that span only the segments holding the frames asked for', () => {
    const batch = encodeFrames(events, 256);
    for (let from = 1; from <= 40; from += 3) {
      for (const max of [1, 100, 700, 1 << 20]) {
        const run = framesFrom(batch, from, max);
        const text = Buffer.concat(run.chunks).toString('utf8');
        const expected = events
          .slice(from - 1, run.lastId)
          .map(sseFrame)
          .join('');
        expect(text).toBe(expected);
        expect(run.bytes).toBe(Buffer.byteLength(expected));
        // Cut after the first frame that reaches max, never inside one.
        if (run.lastId < 40) expect(run.bytes).toBeGreaterThanOrEqual(max);
        expect(run.bytes - Buffer.byteLength(sseFrame(events[run.lastId - 1]!))).toBeLessThan(max);
        for (const chunk of run.chunks) {
          expect(batch.segments.some((segment) => segment.buffer === chunk.buffer)).toBe(true);
        }
        const spanned = new Set(batch.segmentOf.slice(from - 1, run.lastId));
        expect(run.chunks.length).toBe(spanned.size);
      }
    }
  });
});
