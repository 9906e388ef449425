import { describe, expect, it } from 'vitest';
import { replayLines, stepLines } from './buildkit-progress-replay.js';
import { formatBytes } from '../../agent/engines/buildkit-bytes.js';
import {
  cacheImportRef,
  isMissingCache,
  missingCacheNote,
} from '../../agent/engines/buildkit-cache-import.js';
import { BuildKitFailureReason } from '../../agent/engines/buildkit-failure.js';
import { parseSolveStatus, timeMicros } from '../../agent/engines/buildkit-solve-status.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;

function at(seconds: number): string {
  return new Date(Date.UTC(2026, 11, 2, 12, 0, 0) + seconds * 1000).toISOString();
}

function record(value: unknown): string {
  return JSON.stringify(value);
}

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

describe('formatBytes', () => {
  it('prints whole bytes below 1000 and two decimals of decimal units above', () => {
    expect(formatBytes(0)).toBe('0B');
    expect(formatBytes(495)).toBe('495B');
    expect(formatBytes(999)).toBe('999B');
    expect(formatBytes(1000)).toBe('1.00kB');
    expect(formatBytes(3503)).toBe('3.50kB');
    expect(formatBytes(1_064_330)).toBe('1.06MB');
    expect(formatBytes(2_500_000_000)).toBe('2.50GB');
  });
});

describe('timeMicros', () => {
  it('keeps the microseconds of a nanosecond RFC 3339 time', () => {
    const whole = Date.parse('2026-12-02T13:51:40Z') * 1000;
    expect(timeMicros('2026-12-02T13:51:40.781417928Z')).toBe(whole + 781_417);
    expect(timeMicros('2026-12-02T13:51:40Z')).toBe(whole);
    expect(timeMicros('2026-12-02T14:51:40.5+01:00')).toBe(whole + 500_000);
    expect(timeMicros('yesterday')).toBeNaN();
  });
});

describe('parseSolveStatus', () => {
  it('accepts a SolveStatus and refuses what is not one', () => {
    expect(parseSolveStatus(record({ vertexes: [{ digest: A, name: 'x' }] }))).toEqual({
      vertexes: [{ digest: A, name: 'x' }],
    });
    expect(parseSolveStatus('error: failed to solve: x')).toBeNull();
    expect(parseSolveStatus('{"vertexes":')).toBeNull();
    expect(parseSolveStatus(record({ vertexes: [{ name: 'no digest' }] }))).toBeNull();
    expect(parseSolveStatus(record({ logs: 'not a list' }))).toBeNull();
  });
});

describe('BuildKit cache import', () => {
  it('recognises the import vertex and its missing-cache error', () => {
    expect(cacheImportRef('importing cache manifest from 10.0.2.100:5000/cache/acme/main')).toBe(
      '10.0.2.100:5000/cache/acme/main',
    );
    expect(cacheImportRef('[1/2] FROM busybox')).toBeNull();
    expect(
      isMissingCache(
        'failed to configure registry cache importer: 10.0.2.100:5000/cache/acme/main: not found',
      ),
    ).toBe(true);
    expect(isMissingCache('failed to configure registry cache importer: unauthorized')).toBe(false);
    expect(missingCacheNote('r')).toBe('cache: no cache yet for r (first build of this scope)');
  });

  it('shows any other import error as a warning on stderr, and the build goes on', () => {
    const { lines, parser } = replayLines([
      record({
        vertexes: [
          {
            digest: A,
            name: 'importing cache manifest from 127.0.0.1:5000/c',
            started: at(0),
            completed: at(0.2),
            error: 'failed to configure registry cache importer: 401 Unauthorized',
          },
        ],
      }),
    ]);
    expect(lines).toEqual([
      { stream: 'stdout', line: '#1 importing cache manifest from 127.0.0.1:5000/c' },
      {
        stream: 'stderr',
        line: '#1 WARN: cache not imported: failed to configure registry cache importer: 401 Unauthorized',
      },
      { stream: 'stdout', line: '#1 DONE 0.2s' },
    ]);
    expect(parser.failureReason()).toBeNull();
  });
});

describe('BuildKitFailureReason', () => {
  it("prefers buildctl's error line, then the first step error that is no cancellation", () => {
    const r = new BuildKitFailureReason();
    expect(r.reason()).toBeNull();
    r.noteVertexError('importing cache manifest from x', 'x: not found');
    r.noteVertexError('[left 2/2] RUN a', 'exit code: 137: context canceled: context canceled');
    expect(r.reason()).toBeNull();
    r.noteVertexError('[2/2] RUN b', 'exit code: 3');
    r.noteVertexError('[3/3] RUN c', 'exit code: 4');
    expect(r.reason()).toBe('exit code: 3');
    r.noteTextLine('Dockerfile:2');
    r.noteTextLine('error: failed to solve: exit code: 3');
    r.noteTextLine('error: a second one');
    expect(r.reason()).toBe('failed to solve: exit code: 3');
  });

  it('keeps a long reason bounded', () => {
    const r = new BuildKitFailureReason();
    r.noteTextLine(`error: ${'x'.repeat(20_000)}`);
    expect(r.reason()?.length).toBe(4000);
  });
});

describe('BuildKitLogRenderer ordering', () => {
  it('shows a step again, with a second final line, when BuildKit reopens it after the build moved on', () => {
    const { lines } = replayLines([
      record({ vertexes: [{ digest: A, name: 'load context', started: at(0), completed: at(1) }] }),
      record({ vertexes: [{ digest: B, name: 'other', started: at(2) }] }),
      record({ vertexes: [{ digest: A, name: 'load context', started: at(3) }] }),
      record({
        statuses: [
          { id: 'transferring', vertex: A, current: 52, started: at(3), completed: at(4) },
        ],
      }),
      record({ vertexes: [{ digest: A, name: 'load context', started: at(3), completed: at(4) }] }),
      record({ vertexes: [{ digest: B, name: 'other', started: at(2), completed: at(5) }] }),
    ]);
    expect(lines.map((l) => l.line)).toEqual([
      '#1 load context',
      '#1 DONE 1.0s',
      '#2 other',
      '#1 load context',
      '#1 transferring 52B 1.0s done',
      // the stream ended: what is left, in the order it ended
      '#1 DONE 2.0s',
      '#2 DONE 3.0s',
    ]);
  });

  it('waits for a step with dependents until one of them starts', () => {
    const { lines } = replayLines([
      record({ vertexes: [{ digest: B, inputs: [A], name: '[2/2] RUN x' }] }),
      record({
        vertexes: [{ digest: A, name: '[1/2] FROM img', started: at(0), completed: at(1) }],
      }),
      // a step that is no dependent does not release it …
      record({ vertexes: [{ digest: 'sha256:c', name: 'load context', started: at(1.5) }] }),
      // … BuildKit reopens it to unpack the image …
      record({
        vertexes: [{ digest: A, name: '[1/2] FROM img', started: at(2), completed: at(3) }],
      }),
      // … and its dependent starting does
      record({ vertexes: [{ digest: B, inputs: [A], name: '[2/2] RUN x', started: at(4) }] }),
    ]);
    expect(lines.map((l) => l.line)).toEqual([
      '#1 [1/2] FROM img',
      '#2 load context',
      '#1 DONE 2.0s',
      '#3 [2/2] RUN x',
    ]);
  });

  it('shows a still-running status at most every 5 s, with its amount so far', () => {
    const s = (current: number, t: number, done = false) =>
      record({
        statuses: [
          {
            id: 'sha256:layer',
            vertex: A,
            current,
            total: 9_000_000,
            started: at(0),
            timestamp: at(t),
            ...(done ? { completed: at(t) } : {}),
          },
        ],
      });
    const { lines } = replayLines([
      record({ vertexes: [{ digest: A, name: 'exporting to image', started: at(0) }] }),
      s(1_000_000, 1),
      s(2_000_000, 5.5),
      s(3_000_000, 7),
      s(9_000_000, 9, true),
      record({
        vertexes: [{ digest: A, name: 'exporting to image', started: at(0), completed: at(9) }],
      }),
    ]);
    expect(lines.map((l) => l.line)).toEqual([
      '#1 exporting to image',
      '#1 sha256:layer 2.00MB / 9.00MB 5.5s',
      '#1 sha256:layer 9.00MB / 9.00MB 9.0s done',
      '#1 DONE 9.0s',
    ]);
  });

  it('ends a cut log line at the end of the stream, and shows vertex warnings on stderr', () => {
    const { lines } = replayLines([
      record({ vertexes: [{ digest: A, name: '[1/1] RUN x', started: at(0) }] }),
      record({ logs: [{ vertex: A, stream: 1, data: b64('no newline'), timestamp: at(1) }] }),
      record({ warnings: [{ vertex: A, level: 1, short: b64('JSONArgsRecommended') }] }),
      record({ logs: [{ vertex: A, stream: 2, data: b64('\n'), timestamp: at(1) }] }),
    ]);
    expect(lines).toEqual([
      { stream: 'stdout', line: '#1 [1/1] RUN x' },
      { stream: 'stderr', line: '#1 WARN: JSONArgsRecommended' },
      { stream: 'stderr', line: '#1' },
      { stream: 'stdout', line: '#1 no newline' },
    ]);
  });

  it('shows a step whose error arrives with its last log record in that order', () => {
    const { lines } = replayLines([
      record({
        vertexes: [
          {
            digest: A,
            name: '[1/1] RUN false',
            started: at(0),
            completed: at(1),
            error: 'exit code: 1',
          },
        ],
        logs: [{ vertex: A, stream: 2, data: b64('half'), timestamp: at(0.5) }],
      }),
    ]);
    expect(stepLines(lines, 1)).toEqual([
      { stream: 'stdout', line: '[1/1] RUN false' },
      { stream: 'stderr', line: 'half' },
      { stream: 'stderr', line: 'ERROR: exit code: 1' },
    ]);
  });

  it('numbers every line of a step error that spans several lines', () => {
    const { lines } = replayLines([
      record({
        vertexes: [
          {
            digest: A,
            name: '[1/1] RUN x',
            started: at(0),
            completed: at(1),
            error: 'failed to run:\nsecond line',
          },
        ],
      }),
    ]);
    expect(lines).toEqual([
      { stream: 'stdout', line: '#1 [1/1] RUN x' },
      { stream: 'stderr', line: '#1 ERROR: failed to run:' },
      { stream: 'stderr', line: '#1 second line' },
    ]);
  });
});
