import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import type { EngineStream } from '../../agent/engines/buildkit-log-renderer.js';
import { BuildKitProgressParser } from '../../agent/engines/buildkit-progress.js';

/** Captured `buildctl --progress rawjson` output (see the README there). */
export const rawjsonFixtures = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  '../fixtures/buildkit-rawjson',
);

export const RAWJSON_FIXTURES = [
  'multi-stage.jsonl',
  'parallel-stages.jsonl',
  'run-failure.jsonl',
  'copy-source-missing.jsonl',
  'cancelled.jsonl',
  'first-build-of-cache-scope.jsonl',
  'cache-scope-reused.jsonl',
  'lint-warnings.jsonl',
] as const;

export interface RenderedLine {
  stream: EngineStream;
  line: string;
}

export interface Replay {
  lines: RenderedLine[];
  phases: string[];
  parser: BuildKitProgressParser;
}

/** Feeds a fixture's lines (as buildctl wrote them, on stderr) through a parser, then finish(). */
export async function replayFixture(
  name: string,
  transform: (lines: string[]) => string[] = (l) => l,
): Promise<Replay> {
  const text = await readFile(path.join(rawjsonFixtures, name), 'utf8');
  return replayLines(transform(text.split('\n')));
}

export function replayLines(input: string[]): Replay {
  const parser = new BuildKitProgressParser();
  const lines: RenderedLine[] = [];
  const phases: string[] = [];
  const take = (chunks: { stream: EngineStream; text: string }[]): void => {
    for (const c of chunks) {
      expect(c.text.endsWith('\n')).toBe(true);
      for (const line of c.text.slice(0, -1).split('\n')) lines.push({ stream: c.stream, line });
    }
  };
  for (const line of input) {
    const u = parser.parseLine(line, 'stderr');
    if (u.phase) phases.push(u.phase);
    take(u.chunks);
  }
  take(parser.finish());
  return { lines, phases, parser };
}

/** The number of the step whose header starts with `prefix`. */
export function stepNumber(lines: RenderedLine[], prefix: string): number {
  for (const { line } of lines) {
    const m = /^#(\d+) (.*)$/.exec(line);
    if (m?.[1] && m[2]?.startsWith(prefix)) return Number(m[1]);
  }
  throw new Error(`no step starting with ${prefix}`);
}

/** Lines of step `n`, without the `#n ` prefix, with their stream. */
export function stepLines(lines: RenderedLine[], n: number): RenderedLine[] {
  const prefix = `#${n} `;
  return lines
    .filter((l) => l.line.startsWith(prefix) || l.line === `#${n}`)
    .map((l) => ({ stream: l.stream, line: l.line.slice(prefix.length) }));
}
