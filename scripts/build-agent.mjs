#!/usr/bin/env node
// Bundles the in-guest agent (agent/main.ts, the common/ code it imports and its npm
// dependencies) into one CommonJS file for the guest's Node 22: `node scripts/build-agent.mjs
// <out>`. CommonJS because scripts/build-image.sh turns the bundle into a V8 startup snapshot
// (`node --build-snapshot`), which takes a single script that requires only Node built-ins.
// Deterministic output (no timestamps, no absolute paths) so the image hash is stable.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.resolve(process.argv[2] ?? path.join(repo, 'dist', 'agent', 'kiln-agent.cjs'));
const pkg = JSON.parse(await readFile(path.join(repo, 'package.json'), 'utf8'));

const result = await build({
  absWorkingDir: repo,
  entryPoints: [path.join(repo, 'agent', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'cjs',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  define: { 'process.env.KILN_AGENT_VERSION': JSON.stringify(pkg.version) },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`agent bundle: ${path.relative(process.cwd(), outfile)} (${bytes} bytes)`);
