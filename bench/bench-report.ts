import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { SummaryEntry } from './summarize-entry.js';

const RESULTS = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');

/** The machine a result came from, and how busy it was when the run ended. */
export function machine(): Record<string, unknown> {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(os.totalmem() / 1024 ** 3),
    node: process.version,
    loadavg: os.loadavg().map((n) => Math.round(n * 100) / 100),
  };
}

/** p-th percentile (0–100) of samples by nearest rank; NaN when there are none. */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/** Writes bench/results/<name>.json (every figure, then the summary) and prints the summary. */
export function writeResult(
  name: string,
  figures: Record<string, unknown>,
  summary: SummaryEntry[],
): void {
  mkdirSync(RESULTS, { recursive: true });
  const result = {
    benchmark: name,
    date: new Date().toISOString(),
    machine: machine(),
    ...figures,
    summary,
  };
  writeFileSync(path.join(RESULTS, `${name}.json`), `${JSON.stringify(result, null, 2)}\n`);
  for (const s of summary) {
    process.stdout.write(
      `${s.pass ? 'pass' : 'FAIL'}  ${s.name}: ${s.value.toFixed(3)}${s.unit ?? ''} vs ${s.reference.toFixed(3)}${s.unit ?? ''} → ratio ${s.ratio.toFixed(3)} (target ${s.better === 'higher' ? '≥' : '≤'} ${s.target})\n`,
    );
  }
  if (summary.some((s) => !s.pass)) process.exitCode = 1;
}
