import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { summaryEntry } from '../../bench/summarize-entry.js';
import { summarizeResults } from '../../bench/summarize.js';

describe('bench summary', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'kiln-summary-'));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function write(name: string, json: unknown): void {
    writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(json));
  }

  it('computes the ratio and passes against an upper or a lower bound', () => {
    expect(summaryEntry({ name: 'a', value: 3, reference: 2, target: 1.3 })).toMatchObject({
      ratio: 1.5,
      pass: false,
    });
    expect(
      summaryEntry({ name: 'b', value: 90, reference: 100, target: 0.8, better: 'higher' }),
    ).toMatchObject({ ratio: 0.9, pass: true, better: 'higher' });
    expect(() => summaryEntry({ name: 'c', value: 1, reference: 0, target: 1 })).toThrow(
      RangeError,
    );
  });

  it('turns each results file into table rows and draws every bench in the SVG', () => {
    write('queue', {
      summary: [
        summaryEntry({
          name: 'scheduling per build',
          value: 0.4,
          reference: 1,
          target: 1,
          unit: 'ms',
        }),
        summaryEntry({ name: 'GET /builds p99', value: 80, reference: 50, target: 1, unit: 'ms' }),
      ],
    });
    write('upload', {
      summary: [
        summaryEntry({
          name: 'tar throughput',
          value: 120,
          reference: 130,
          target: 0.8,
          better: 'higher',
        }),
      ],
    });
    write('guest-image', { bootToAgentSeconds: { median: 7 } });
    write('broken', { summary: [{ name: 'x', value: 'fast' }] });

    const { summary, table } = summarizeResults(dir, new Date('2026-12-02T12:00:00Z'));

    expect(summary.rows.map((r) => [r.bench, r.name, r.pass])).toEqual([
      ['queue', 'scheduling per build', true],
      ['queue', 'GET /builds p99', false],
      ['upload', 'tar throughput', true],
    ]);
    expect(summary.withoutSummary).toEqual(['guest-image']);
    expect(summary.invalid.map((i) => i.bench)).toEqual(['broken']);
    const lines = table.split('\n');
    expect(lines.find((l) => l.startsWith('queue') && l.includes('GET /builds p99'))).toMatch(
      /80\.00 ms\s+50\.00 ms\s+1\.60\s+≤ 1\.00\s+FAIL/,
    );
    expect(lines.find((l) => l.startsWith('upload'))).toMatch(/0\.9231\s+≥ 0\.8000\s+pass/);
    expect(table).toContain('guest-image: no summary in its results file');
    expect(table).toContain('2/3 figures meet their target');

    const svg = readFileSync(path.join(dir, 'summary.svg'), 'utf8');
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg).toContain('<g data-bench="queue">');
    expect(svg).toContain('<g data-bench="upload">');
    expect(svg).toContain('GET /builds p99');
    expect(svg.match(/fill="#c62828"/g)).toHaveLength(1);
    expect(svg.match(/fill="#2e7d32"/g)).toHaveLength(2);
    const written = JSON.parse(readFileSync(path.join(dir, 'summary.json'), 'utf8')) as {
      rows: unknown[];
      generatedAt: string;
    };
    expect(written.rows).toHaveLength(3);
    expect(written.generatedAt).toBe('2026-12-02T12:00:00.000Z');
  });

  it('rebuilds the same summary from the files alone, ignoring its own output', () => {
    write('queue', {
      summary: [summaryEntry({ name: 'p99', value: 10, reference: 50, target: 1, unit: 'ms' })],
    });
    const first = summarizeResults(dir, new Date('2026-12-02T12:00:00Z'));
    const second = summarizeResults(dir, new Date('2026-12-02T12:00:00Z'));
    expect(second.table).toBe(first.table);
    expect(second.summary.rows).toHaveLength(1);
  });

  it('escapes names in the SVG', () => {
    write('odd<bench>', {
      summary: [summaryEntry({ name: 'a & "b"', value: 1, reference: 1, target: 1 })],
    });
    summarizeResults(dir, new Date());
    const svg = readFileSync(path.join(dir, 'summary.svg'), 'utf8');
    expect(svg).toContain('odd&lt;bench&gt;: a &amp; &quot;b&quot;');
    expect(svg).not.toContain('<bench>');
  });
});
