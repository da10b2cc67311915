#!/usr/bin/env node
// Runs native test binaries (tables of named tests, native/test/unit.h) and
// counts them the way the closing line of `npm test` does. A binary's tests
// are read from its TAP lines; on top of those, the binary itself fails when
// it exits non-zero without saying which test failed, dies of a signal, runs
// past its time, never prints its closing summary, or prints any sanitizer
// report (ASan, LSan, UBSan, TSan) - each is one failure, named with the test
// that was running.
//
//   node test/native-runner.mjs [--label L] [--json FILE] [--timeout SECONDS] BINARY...
//
// Exit status: 0 when nothing failed, 1 otherwise, 2 on bad usage.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';

const SANITIZER_REPORT = [
  [/^==\d+==ERROR: AddressSanitizer/m, 'AddressSanitizer report'],
  [/^==\d+==ERROR: LeakSanitizer/m, 'LeakSanitizer report'],
  [/^WARNING: ThreadSanitizer/m, 'ThreadSanitizer report'],
  [/: runtime error: /m, 'UndefinedBehaviorSanitizer report'],
  [/^SUMMARY: (\w+Sanitizer)/m, 'sanitizer report'],
];

// Sanitizers report and stop at their first finding; a user's own settings win.
const SANITIZER_ENV = {
  ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0:exitcode=23',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
  LSAN_OPTIONS: 'exitcode=23',
  TSAN_OPTIONS: 'exitcode=66:halt_on_error=0',
};

const TEST_LINE = /^(not )?ok \d+ - (.+?)(?: # SKIP (.*))?$/;

/** Counts one binary's output and ending. Exported for the runner's own test. */
export function judge(bin, output, { code, signal, timedOut }) {
  const name = basename(bin);
  const results = [];
  let running = null;
  let summary = false;
  for (const line of output.split('\n')) {
    const start = /^# start (.+)$/.exec(line);
    if (start) running = start[1];
    const t = TEST_LINE.exec(line);
    if (t) {
      const status = t[1] ? 'failed' : t[3] !== undefined ? 'skipped' : 'passed';
      results.push({ name: `${name}: ${t[2]}`, status, reason: t[3] });
      running = null;
    }
    if (new RegExp(`^# ${name}: \\d+ passed, \\d+ failed, \\d+ skipped$`).test(line)) summary = true;
  }
  const during = running ? ` during ${running}` : '';
  const fail = (why) => results.push({ name: `${name}: ${why}${during}`, status: 'failed' });
  for (const [re, what] of SANITIZER_REPORT) {
    if (re.test(output)) {
      fail(what);
      break;
    }
  }
  const anyFailed = results.some((r) => r.status === 'failed');
  if (timedOut) fail('timed out');
  else if (signal) fail(`killed by ${signal}`);
  else if (!anyFailed && code !== 0) fail(`exited with status ${code}`);
  else if (!anyFailed && !summary) fail('ended without its closing summary');
  if (!results.length) fail('ran no test');
  return results;
}

function runOne(bin, timeoutMs) {
  return new Promise((resolve) => {
    const env = { ...SANITIZER_ENV, ...process.env };
    const child = spawn(bin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const take = (stream, sink) =>
      stream.on('data', (d) => {
        output += d;
        sink.write(d);
      });
    take(child.stdout, process.stdout);
    take(child.stderr, process.stderr);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', (e) => {
      output += `\ncannot start: ${e.message}\n`;
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve(judge(bin, output, { code, signal, timedOut }));
    });
  });
}

export function totals(results) {
  const count = (s) => results.filter((r) => r.status === s).length;
  return { passed: count('passed'), failed: count('failed'), skipped: count('skipped') };
}

async function main() {
  let args;
  try {
    args = parseArgs({
      allowPositionals: true,
      options: { label: { type: 'string', default: 'native' }, json: { type: 'string' }, timeout: { type: 'string', default: '900' } },
    });
  } catch (e) {
    console.error(`native-runner: ${e.message}`);
    process.exit(2);
  }
  const { label, json, timeout } = args.values;
  if (!args.positionals.length || !(Number(timeout) > 0)) {
    console.error('usage: native-runner.mjs [--label L] [--json FILE] [--timeout SECONDS] BINARY...');
    process.exit(2);
  }
  const results = [];
  for (const bin of args.positionals) results.push(...(await runOne(bin, Number(timeout) * 1000)));
  const t = totals(results);
  for (const r of results.filter((x) => x.status === 'failed')) console.log(`FAILED ${label}: ${r.name}`);
  console.log(`# native (${label}): ${t.passed} passed, ${t.failed} failed, ${t.skipped} skipped`);
  if (json) writeFileSync(json, JSON.stringify({ label, ...t, results }, null, 1));
  process.exit(t.failed ? 1 : 0);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
