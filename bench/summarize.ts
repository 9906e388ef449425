/**
 * Rebuilds the benchmark summary from the results files alone: reads every
 * bench/results/<name>.json, prints one table of their `summary` figures and writes it as
 * bench/results/summary.json and an SVG chart, bench/results/summary.svg (what the README
 * shows). scripts/run-benches.mjs runs it after the benchmarks.
 *
 * Run: npx tsx bench/summarize.ts [results-dir]
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { summaryChart } from './summarize-chart.js';
import { formatSummaryTable, summaryRows, type SummaryRows } from './summarize-rows.js';

/** Summary files this script writes; never read back as benchmark results. */
const OWN_FILES = new Set(['summary.json']);

/** Reads the results files of `dir`, writes summary.json and summary.svg there; returns the rows. */
export function summarizeResults(dir: string, now: Date): { summary: SummaryRows; table: string } {
  const files = readdirSync(dir)
    .filter((name) => name.endsWith('.json') && !OWN_FILES.has(name))
    .map((name) => {
      const bench = name.slice(0, -'.json'.length);
      try {
        return { bench, json: JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as unknown };
      } catch {
        return { bench, json: null };
      }
    });
  const summary = summaryRows(files);
  const table = formatSummaryTable(summary);
  writeFileSync(
    path.join(dir, 'summary.json'),
    `${JSON.stringify({ generatedAt: now.toISOString(), ...summary }, null, 2)}\n`,
  );
  writeFileSync(
    path.join(dir, 'summary.svg'),
    summaryChart(summary.rows, `Kiln benchmarks (${now.toISOString().slice(0, 10)})`),
  );
  return { summary, table };
}

if (
  process.argv[1] !== undefined &&
  path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)
) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const dir = process.argv[2] ?? path.join(root, 'bench', 'results');
  const { table } = summarizeResults(dir, new Date());
  process.stdout.write(table);
}
