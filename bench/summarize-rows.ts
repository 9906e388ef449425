import { resultsFileSchema, type SummaryEntry } from './summarize-entry.js';

/** One summary entry with the benchmark it came from. */
export interface SummaryRow extends SummaryEntry {
  bench: string;
}

/** Every benchmark's rows, and the benchmarks whose file has no usable summary. */
export interface SummaryRows {
  rows: SummaryRow[];
  /** Benchmarks whose results file has no `summary` (written before it existed, or failed). */
  withoutSummary: string[];
  /** Benchmarks whose `summary` does not have the shape of summarize-entry.ts. */
  invalid: { bench: string; message: string }[];
}

/** Collects the rows of results files (`bench` is the file name without `.json`), by bench name. */
export function summaryRows(files: readonly { bench: string; json: unknown }[]): SummaryRows {
  const out: SummaryRows = { rows: [], withoutSummary: [], invalid: [] };
  for (const { bench, json } of [...files].sort((a, b) => a.bench.localeCompare(b.bench))) {
    const parsed = resultsFileSchema.safeParse(json);
    if (!parsed.success) {
      out.invalid.push({ bench, message: parsed.error.issues.map((i) => i.message).join('; ') });
      continue;
    }
    const summary = parsed.data.summary;
    if (summary === undefined || summary.length === 0) {
      out.withoutSummary.push(bench);
      continue;
    }
    for (const entry of summary) out.rows.push({ bench, ...entry });
  }
  return out;
}

/** A number with about four significant digits, without exponent notation for usual sizes. */
export function formatNumber(n: number): string {
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs >= 1000) return n.toFixed(0);
  if (abs >= 100) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  if (abs >= 0.001) return n.toFixed(4);
  return n.toExponential(2);
}

/** `≤ 1.3` or `≥ 0.8`: how the ratio is bounded. */
export function targetText(row: Pick<SummaryEntry, 'target' | 'better'>): string {
  return `${row.better === 'higher' ? '≥' : '≤'} ${formatNumber(row.target)}`;
}

/** The rows as a plain-text table, one line per figure, then the benchmarks without one. */
export function formatSummaryTable(summary: SummaryRows): string {
  const header = ['bench', 'figure', 'value', 'reference', 'ratio', 'target', 'result'];
  const lines = summary.rows.map((r) => [
    r.bench,
    r.name,
    `${formatNumber(r.value)}${r.unit === undefined ? '' : ` ${r.unit}`}`,
    `${formatNumber(r.reference)}${r.unit === undefined ? '' : ` ${r.unit}`}`,
    formatNumber(r.ratio),
    targetText(r),
    r.pass ? 'pass' : 'FAIL',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const render = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  const text = [render(header), render(widths.map((w) => '-'.repeat(w))), ...lines.map(render)];
  for (const bench of summary.withoutSummary) text.push(`${bench}: no summary in its results file`);
  for (const { bench, message } of summary.invalid) {
    text.push(`${bench}: summary not readable (${message})`);
  }
  const passed = summary.rows.filter((r) => r.pass).length;
  text.push(`${passed}/${summary.rows.length} figures meet their target`);
  return `${text.join('\n')}\n`;
}
