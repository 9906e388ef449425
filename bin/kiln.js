#!/usr/bin/env node
// The `kiln` command: runs the compiled CLI (built by `npm ci` through the prepare script).
import '../dist/src/cli/kiln.js';
