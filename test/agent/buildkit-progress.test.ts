import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  RAWJSON_FIXTURES,
  rawjsonFixtures,
  replayFixture,
  replayLines,
  stepLines,
  stepNumber,
  type RenderedLine,
} from './buildkit-progress-replay.js';
import { digestFromMetadata } from '../../agent/engines/buildkit-metadata.js';
import { phaseOf } from '../../agent/engines/buildkit-progress.js';

const BASE = '127.0.0.1:33577/base/busybox:1';
const BASE_DIGEST = 'sha256:0eaed2ebfa40ffc9735492e1b7149d98f8fa5820a79bd4399ffcb0e02025fb91';
const FINAL = /^#(\d+) (DONE \d+\.\ds|CACHED|CANCELED|ERROR: .*)$/;

/** Every `#N` line after step N's final line (DONE, CACHED, ERROR, CANCELED). */
function linesAfterFinal(lines: RenderedLine[]): string[] {
  const finished = new Set<string>();
  const late: string[] = [];
  for (const { line } of lines) {
    const n = /^#(\d+)\b/.exec(line)?.[1];
    if (n === undefined) continue;
    if (finished.has(n)) late.push(line);
    if (FINAL.test(line)) finished.add(n);
  }
  return late;
}

describe('BuildKit rawjson progress, replayed from captured buildctl output', () => {
  it.each(RAWJSON_FIXTURES)('%s: no step prints a line after its own final line', async (name) => {
    const { lines } = await replayFixture(name);
    expect(lines.length).toBeGreaterThan(10);
    expect(linesAfterFinal(lines)).toEqual([]);
  });

  it.each(RAWJSON_FIXTURES)(
    '%s: every step that started has exactly one final line',
    async (name) => {
      const { lines } = await replayFixture(name);
      const headers = new Set<string>();
      const finals = new Map<string, number>();
      for (const { line } of lines) {
        const m = /^#(\d+) /.exec(line);
        if (m?.[1]) headers.add(m[1]);
        const f = FINAL.exec(line)?.[1];
        if (f) finals.set(f, (finals.get(f) ?? 0) + 1);
      }
      expect([...headers].map((n) => [n, finals.get(n)])).toEqual([...headers].map((n) => [n, 1]));
    },
  );

  it.each(RAWJSON_FIXTURES)('%s: a status without a total never prints "0 done"', async (name) => {
    const { lines } = await replayFixture(name);
    expect(lines.filter((l) => / 0 done$| 0B /.test(l.line))).toEqual([]);
  });

  it('prints headers, status amounts and durations the way --progress plain does', async () => {
    const { lines } = await replayFixture('multi-stage.jsonl');
    const text = lines.map((l) => l.line);
    expect(text.slice(0, 3)).toEqual([
      '#1 [internal] load build definition from Dockerfile',
      '#1 transferring dockerfile: 495B done',
      '#1 DONE 0.0s',
    ]);
    const from = stepNumber(lines, '[build 1/5] FROM');
    expect(stepLines(lines, from).map((l) => l.line)).toEqual([
      `[build 1/5] FROM ${BASE}@${BASE_DIGEST}`,
      `resolve ${BASE}@${BASE_DIGEST} done`,
      'sha256:62c7bc17a6da826af1c49e7020f5db3a53d88f262867c21ef305d837d32c141f 3.50kB / 3.50kB done',
      'sha256:39d0470b6e70926f5182f527f69e900ac800477f6f4468982a2a8bb0025915c4 1.06MB / 1.06MB done',
      'extracting sha256:39d0470b6e70926f5182f527f69e900ac800477f6f4468982a2a8bb0025915c4 0.0s done',
      'extracting sha256:62c7bc17a6da826af1c49e7020f5db3a53d88f262867c21ef305d837d32c141f 0.0s done',
      'DONE 0.1s',
    ]);
  });

  it('puts each RUN output line on the stream the step wrote it to, and the rest on stdout', async () => {
    const { lines } = await replayFixture('multi-stage.jsonl');
    const run = stepNumber(lines, '[build 4/5] RUN');
    expect(stepLines(lines, run).slice(1)).toEqual([
      { stream: 'stderr', line: 'warning: to stderr' },
      { stream: 'stdout', line: 'compiling to stdout' },
      { stream: 'stdout', line: 'second stdout line' },
      // `printf 'partial '; sleep 1; printf 'line\n'`: two records, one line
      { stream: 'stdout', line: 'partial line' },
      { stream: 'stderr', line: 'last stderr line' },
      { stream: 'stdout', line: 'DONE 2.1s' },
    ]);
    const final = stepNumber(lines, '[stage-1 3/3] RUN');
    expect(stepLines(lines, final)).toContainEqual({
      stream: 'stdout',
      line: 'final stage: 2 lines',
    });
    const stderr = lines.filter((l) => l.stream === 'stderr').map((l) => l.line);
    expect(stderr).toEqual([`#${run} warning: to stderr`, `#${run} last stderr line`]);
  });

  it('shows the steps of parallel stages with their own streams and one final line each', async () => {
    const { lines } = await replayFixture('parallel-stages.jsonl');
    const left = stepNumber(lines, '[left 2/2] RUN');
    const right = stepNumber(lines, '[right 2/2] RUN');
    expect(stepLines(lines, left).slice(1)).toEqual([
      { stream: 'stdout', line: 'left 1' },
      { stream: 'stdout', line: 'left 2' },
      { stream: 'stdout', line: 'left 3' },
      { stream: 'stderr', line: 'left done' },
      { stream: 'stdout', line: 'DONE 1.0s' },
    ]);
    expect(stepLines(lines, right).slice(1)).toEqual([
      { stream: 'stderr', line: 'right 1' },
      { stream: 'stderr', line: 'right 2' },
      { stream: 'stderr', line: 'right 3' },
      { stream: 'stdout', line: 'right done' },
      { stream: 'stdout', line: 'DONE 0.7s' },
    ]);
  });

  it("holds a step's DONE back while one of its statuses is still open", async () => {
    // BuildKit completes "exporting to image" before its "pushing manifest" status.
    const { lines } = await replayFixture('first-build-of-cache-scope.jsonl');
    const exporter = stepNumber(lines, 'exporting to image');
    expect(stepLines(lines, exporter).map((l) => l.line)).toEqual([
      'exporting to image',
      'exporting layers 0.0s done',
      'exporting manifest sha256:c979a406677262bce2db2b74b07669605990926ee950aa6a4baad28e9d40cd3b done',
      'exporting config sha256:7b52d80f99bf1abb0f44197dbe16a6bdcee749cc371128af18779e97dca57a22 done',
      'pushing layers 0.0s done',
      'pushing manifest for 127.0.0.1:33577/acme/web:b_1@sha256:c979a406677262bce2db2b74b07669605990926ee950aa6a4baad28e9d40cd3b done',
      'DONE 0.1s',
    ]);
    const cache = stepNumber(lines, 'exporting cache to registry');
    const cacheLines = stepLines(lines, cache).map((l) => l.line);
    expect(cacheLines.at(-2)).toBe('preparing build cache for export 0.1s done');
    expect(cacheLines.at(-1)).toBe('DONE 0.1s');
  });

  it('prints a step that ends before the next one starts as a block: DONE, then the next header', async () => {
    const { lines } = await replayFixture('first-build-of-cache-scope.jsonl');
    const text = lines.map((l) => l.line);
    for (const [step, next] of [
      ['[build 4/5] RUN', '[build 5/5] RUN'],
      ['[build 5/5] RUN', '[stage-1 2/3] COPY'],
      ['[stage-1 3/3] RUN', 'exporting to image'],
    ] as const) {
      const n = stepNumber(lines, step);
      const m = stepNumber(lines, next);
      const doneAt = text.findIndex((l) => l.startsWith(`#${n} DONE `));
      expect(doneAt).toBeGreaterThan(-1);
      expect(text.findIndex((l) => l.startsWith(`#${m} ${next}`))).toBe(doneAt + 1);
    }
  });

  it("shows the missing cache of a scope's first build as information on stdout, not as an ERROR", async () => {
    const { lines } = await replayFixture('first-build-of-cache-scope.jsonl');
    const imp = stepNumber(lines, 'importing cache manifest from');
    expect(stepLines(lines, imp)).toEqual([
      { stream: 'stdout', line: 'importing cache manifest from 127.0.0.1:33577/acme/cache:main' },
      {
        stream: 'stdout',
        line: 'cache: no cache yet for 127.0.0.1:33577/acme/cache:main (first build of this scope)',
      },
      { stream: 'stdout', line: 'DONE 0.0s' },
    ]);
    expect(lines.filter((l) => /ERROR|not found/.test(l.line))).toEqual([]);
  });

  it('imports the cache the first build exported: the steps are CACHED and no cache note shows', async () => {
    const { lines, parser } = await replayFixture('cache-scope-reused.jsonl');
    const run = stepNumber(lines, '[build 4/5] RUN');
    expect(
      stepLines(lines, run)
        .map((l) => l.line)
        .slice(1),
    ).toEqual(['CACHED']);
    expect(lines.filter((l) => l.line.includes('no cache yet'))).toEqual([]);
    expect(parser.failureReason()).toBeNull();
  });

  it('shows Dockerfile lint warnings on stderr, also one that comes after its step ended', async () => {
    const { lines } = await replayFixture('lint-warnings.jsonl');
    expect(lines.filter((l) => l.line.includes('WARN'))).toEqual([
      {
        stream: 'stderr',
        line: "#1 WARN: FromAsCasing: 'as' and 'FROM' keywords' casing do not match (line 1)",
      },
      {
        stream: 'stderr',
        line: 'WARN: JSONArgsRecommended: JSON arguments recommended for CMD to prevent unintended behavior related to OS signals (line 5)',
      },
    ]);
  });

  it('reports the pushing and exporting_cache phases in order, once each', async () => {
    expect((await replayFixture('first-build-of-cache-scope.jsonl')).phases).toEqual([
      'pushing',
      'exporting_cache',
    ]);
    expect((await replayFixture('multi-stage.jsonl')).phases).toEqual([]);
  });

  it('collects the base images BuildKit resolved from FROM vertices', async () => {
    const { parser } = await replayFixture('parallel-stages.jsonl');
    expect(parser.resolvedBaseImages()).toEqual({ [BASE]: BASE_DIGEST });
  });
});

describe('BuildKit failures', () => {
  const runFailure =
    'process "/bin/sh -c echo \\"about to fail\\"; echo \\"sh: boom\\" >&2; exit 3" did not complete successfully: exit code: 3';

  it('gives BuildKit\'s own "failed to solve" line as the reason of a failed RUN', async () => {
    const { parser, lines } = await replayFixture('run-failure.jsonl');
    expect(parser.failureReason()).toBe(`failed to solve: ${runFailure}`);
    const run = stepNumber(lines, '[2/3] RUN');
    expect(stepLines(lines, run).slice(1)).toEqual([
      { stream: 'stderr', line: 'sh: boom' },
      { stream: 'stdout', line: 'about to fail' },
      { stream: 'stderr', line: `ERROR: ${runFailure}` },
    ]);
    // buildctl's own lines (the Dockerfile excerpt and the error) pass through on stderr
    expect(lines.slice(-3)).toEqual([
      { stream: 'stderr', line: '   4 |' },
      { stream: 'stderr', line: '--------------------' },
      { stream: 'stderr', line: `error: failed to solve: ${runFailure}` },
    ]);
  });

  it("falls back to the failed step's error when buildctl printed no error line", async () => {
    const { parser } = await replayFixture('run-failure.jsonl', (l) =>
      l.filter((line) => line.startsWith('{')),
    );
    expect(parser.failureReason()).toBe(runFailure);
  });

  it('names the failing COPY and shows the stage cancelled because of it as CANCELED', async () => {
    const { parser, lines } = await replayFixture('copy-source-missing.jsonl');
    expect(parser.failureReason()).toMatch(
      /^failed to solve: failed to compute cache key: failed to calculate checksum of ref \S+: "\/etc\/hostname": not found$/,
    );
    const copy = stepNumber(lines, '[stage-2 3/4] COPY');
    expect(stepLines(lines, copy).at(-1)?.line).toMatch(/^ERROR: failed to calculate checksum/);
    const left = stepNumber(lines, '[left 2/2] RUN');
    expect(stepLines(lines, left).at(-1)).toEqual({ stream: 'stderr', line: 'CANCELED' });
  });

  it('shows a cancelled step as CANCELED, and the reason buildctl gave', async () => {
    const { parser, lines } = await replayFixture('cancelled.jsonl');
    const run = stepNumber(lines, '[2/2] RUN');
    expect(stepLines(lines, run).slice(1)).toEqual([
      { stream: 'stdout', line: 'working' },
      { stream: 'stderr', line: 'CANCELED' },
    ]);
    expect(parser.failureReason()).toBe('failed to solve: Canceled: context canceled');
  });

  it('has no reason for a build that succeeded', async () => {
    for (const name of ['multi-stage.jsonl', 'first-build-of-cache-scope.jsonl']) {
      expect((await replayFixture(name)).parser.failureReason()).toBeNull();
    }
  });
});

describe('BuildKit output that is not a SolveStatus', () => {
  it('passes text through on its own stream and ignores empty lines', () => {
    const { lines } = replayLines(['', '{"vertexes":', '[1,2]', '   ']);
    expect(lines).toEqual([
      { stream: 'stderr', line: '{"vertexes":' },
      { stream: 'stderr', line: '[1,2]' },
    ]);
  });

  it('maps exporter vertex names to phases', () => {
    expect(phaseOf('exporting to image')).toBe('pushing');
    expect(phaseOf('exporting cache to registry')).toBe('exporting_cache');
    expect(phaseOf('exporting cache')).toBe('exporting_cache');
    expect(phaseOf('[2/3] RUN make')).toBeNull();
  });
});

describe('BuildKit metadata file', () => {
  it('reads containerimage.digest from the metadata file of a captured push', async () => {
    const text = await readFile(path.join(rawjsonFixtures, 'push-metadata.json'), 'utf8');
    expect(digestFromMetadata(text)).toBe(
      'sha256:c979a406677262bce2db2b74b07669605990926ee950aa6a4baad28e9d40cd3b',
    );
  });

  it('falls back to the descriptor digest and rejects anything else', () => {
    const d = `sha256:${'e'.repeat(64)}`;
    expect(digestFromMetadata(JSON.stringify({ 'containerimage.descriptor': { digest: d } }))).toBe(
      d,
    );
    expect(
      digestFromMetadata(JSON.stringify({ 'containerimage.digest': 'sha256:short' })),
    ).toBeNull();
    expect(digestFromMetadata('not json')).toBeNull();
    expect(digestFromMetadata('[]')).toBeNull();
  });
});
