#!/usr/bin/env node
// Runs every bench/*.bench.ts with tsx, one after the other (the machines have two cores),
// then prints one summary table of their results and draws it (bench/summarize.ts writes
// bench/results/summary.json and summary.svg). Exits non-zero when any benchmark failed.
//
//   npm run bench                     every benchmark, full size
//   npm run bench -- --quick          every benchmark, small sizes and one run (a smoke run)
//   npm run bench -- queue fanout     only the benchmarks whose file name contains a word
//
// Options (words starting with --) are passed through to each benchmark.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const passThrough = args.filter((a) => a.startsWith('--'));
const only = args.filter((a) => !a.startsWith('--'));
const benches = readdirSync(path.join(root, 'bench'))
  .filter((name) => name.endsWith('.bench.ts'))
  .filter((name) => only.length === 0 || only.some((o) => name.includes(o)))
  .sort();
if (benches.length === 0) {
  process.stderr.write(`no benchmark matches ${only.join(', ')}\n`);
  process.exit(1);
}
const failed = [];
for (const name of benches) {
  process.stdout.write(
    `\n== ${name}${passThrough.length > 0 ? ` ${passThrough.join(' ')}` : ''}\n`,
  );
  const started = Date.now();
  const r = spawnSync(
    process.execPath,
    ['--import', 'tsx', path.join('bench', name), ...passThrough],
    { cwd: root, stdio: 'inherit' },
  );
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `== ${name}: ${r.status === 0 ? 'ok' : `failed (${r.status ?? r.signal})`} in ${seconds}s\n`,
  );
  if (r.status !== 0) failed.push(name);
}
process.stdout.write('\n== summary (bench/results/summary.svg)\n');
const s = spawnSync(process.execPath, ['--import', 'tsx', path.join('bench', 'summarize.ts')], {
  cwd: root,
  stdio: 'inherit',
});
if (s.status !== 0) failed.push('summarize');
if (failed.length > 0) {
  process.stderr.write(`benchmarks failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
