#!/usr/bin/env node
// The closing lines of `npm test`: every part's counts added up, each failed
// and each skipped test named (a skip with its reason), then
// "N passed, N failed, N skipped" alone on the last line.
//
//   node test/summary.mjs [--native FILE]... [--vitest FILE --vitest-exit N] [--skips FILE] [--passed-part NAME]... [--failed-part NAME]...
//
// A part whose report is missing or unreadable counts as one failure.
// Exit status: 0 when nothing failed, 1 otherwise.
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    native: { type: 'string', multiple: true, default: [] },
    vitest: { type: 'string' },
    'vitest-exit': { type: 'string', default: '0' },
    skips: { type: 'string' },
    'failed-part': { type: 'string', multiple: true, default: [] },
    'passed-part': { type: 'string', multiple: true, default: [] },
  },
});

const passed = [...values['passed-part']];
const failed = values['failed-part'].map((n) => n);
const skipped = [];
const read = (file) => {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return null;
  }
};

for (const file of values.native) {
  const r = read(file);
  if (!r) {
    failed.push(`native report ${file} missing or unreadable`);
    continue;
  }
  for (const t of r.results) {
    const name = `native (${r.label}) ${t.name}`;
    if (t.status === 'passed') passed.push(name);
    else if (t.status === 'skipped') skipped.push(`${name}: ${t.reason}`);
    else failed.push(name);
  }
}

if (values.vitest) {
  const before = failed.length;
  const r = read(values.vitest);
  const reasons = new Map();
  if (values.skips && existsSync(values.skips))
    for (const line of readFileSync(values.skips, 'utf8').split('\n').filter(Boolean)) {
      const s = JSON.parse(line);
      reasons.set(`${s.file}|${s.title}`, s.reason);
    }
  if (!r) failed.push('vitest report missing or unreadable');
  else
    for (const file of r.testResults) {
      const rel = file.name.replace(/^.*?\/test\//, 'test/');
      // A file that failed to load or crashed has no test results of its own.
      if (file.status === 'failed' && !file.assertionResults.some((a) => a.status === 'failed'))
        failed.push(`${rel}: ${(file.message || 'failed outside any test').split('\n')[0]}`);
      for (const a of file.assertionResults) {
        const name = `${rel} > ${a.fullName}`;
        if (a.status === 'passed') passed.push(name);
        else if (a.status === 'failed') failed.push(name);
        else {
          const why = reasons.get(`${file.name.split('/').pop()}|${a.title}`);
          skipped.push(`${name}: ${why ?? 'no reason given'}`);
          if (!why) failed.push(`${name}: skipped without a reason (use skipBecause from test/skip.ts)`);
        }
      }
    }
  const vitestFailed = failed.length - before;
  if (values['vitest-exit'] !== '0' && vitestFailed === 0) failed.push(`vitest exited with status ${values['vitest-exit']} (an error outside any test)`);
}

if (skipped.length) {
  console.log(`skipped (${skipped.length}):`);
  for (const s of skipped) console.log(`  - ${s}`);
}
if (failed.length) {
  console.log(`failed (${failed.length}):`);
  for (const f of failed) console.log(`  - ${f}`);
}
console.log(`${passed.length} passed, ${failed.length} failed, ${skipped.length} skipped`);
process.exit(failed.length ? 1 : 0);
