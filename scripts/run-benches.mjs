#!/usr/bin/env node
// Runs every bench/*.bench.ts with tsx, one after the other (the machines have two cores),
// and exits non-zero when any benchmark failed. Each writes its numbers to bench/results/.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const only = process.argv.slice(2);
const benches = readdirSync(path.join(root, 'bench'))
  .filter((name) => name.endsWith('.bench.ts'))
  .filter((name) => only.length === 0 || only.some((o) => name.includes(o)))
  .sort();
const failed = [];
for (const name of benches) {
  process.stdout.write(`\n== ${name}\n`);
  const started = Date.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', path.join('bench', name)], {
    cwd: root,
    stdio: 'inherit',
  });
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `== ${name}: ${r.status === 0 ? 'ok' : `failed (${r.status ?? r.signal})`} in ${seconds}s\n`,
  );
  if (r.status !== 0) failed.push(name);
}
if (failed.length > 0) {
  process.stderr.write(`benchmarks failed: ${failed.join(', ')}\n`);
  process.exit(1);
}
