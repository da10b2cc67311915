#!/usr/bin/env node
// Entry point: the compiled CLI (npm ci / npm run build produce dist/).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
const cli = new URL('../dist/harness/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('faultlab: not built yet; run `npm ci` (or `npm run build`) in the faultlab folder');
  process.exit(1);
}
await import(cli.href);
