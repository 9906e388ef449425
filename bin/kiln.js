#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (npm ci / npm run build compile it into dist/).
import '../dist/src/cli/kiln.js';
