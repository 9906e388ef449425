#!/usr/bin/env node
// Bundles the in-guest agent (agent/main.ts, the common/ code it imports and its npm
// dependencies) into one ESM file for the guest's Node 22: `node scripts/build-agent.mjs <out>`.
// Deterministic output (no timestamps, no absolute paths) so the image hash is stable.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outfile = path.resolve(process.argv[2] ?? path.join(repo, 'dist', 'agent', 'kiln-agent.mjs'));
const pkg = JSON.parse(await readFile(path.join(repo, 'package.json'), 'utf8'));

const result = await build({
  absWorkingDir: repo,
  entryPoints: [path.join(repo, 'agent', 'main.ts')],
  outfile,
  bundle: true,
  platform: 'node',
  target: 'node22',
  format: 'esm',
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: false,
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  define: { 'process.env.KILN_AGENT_VERSION': JSON.stringify(pkg.version) },
  // Some dependencies are CommonJS and call require() for Node built-ins.
  banner: {
    js: "import { createRequire as __kilnCreateRequire } from 'node:module';\nconst require = __kilnCreateRequire(import.meta.url);",
  },
});
const bytes = Object.values(result.metafile.outputs).reduce((n, o) => n + o.bytes, 0);
console.log(`agent bundle: ${path.relative(process.cwd(), outfile)} (${bytes} bytes)`);
