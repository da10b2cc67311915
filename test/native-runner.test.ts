// The test command counts every failure: native test binaries built from a
// fixture that fails in each way the runner must see (a failed check, a
// crash, an AddressSanitizer, LeakSanitizer or ThreadSanitizer report, a test
// that checks nothing, an exit without its summary), run through the same
// test/native-runner.mjs and test/summary.mjs that `npm test` uses.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const source = join(root, 'test/fixtures/native/fixture_test.c');
const runner = join(root, 'test/native-runner.mjs');
const summary = join(root, 'test/summary.mjs');
const asRoot = process.getuid?.() === 0;

// Binary name -> how it is built.
const BUILDS: Record<string, string[]> = {
  fixture_ok: [],
  fixture_fail: ['-DFAIL_CHECK'],
  fixture_crash: ['-DCRASH'],
  fixture_overflow_asan: ['-DOVERFLOW', '-fsanitize=address,undefined'],
  fixture_leak_asan: ['-DLEAK', '-fsanitize=address,undefined'],
  fixture_race_tsan: ['-DRACE', '-fsanitize=thread'],
  fixture_no_check: ['-DNO_CHECK'],
  fixture_exit_early: ['-DEXIT_EARLY'],
};

let dir = '';
const bin = (name: string) => join(dir, name);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'faultlab-runner-'));
  for (const [name, flags] of Object.entries(BUILDS)) execFileSync('gcc', ['-O0', '-g', '-pthread', ...flags, '-o', bin(name), source], { stdio: 'pipe' });
}, 120_000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runNative(names: string[]) {
  const json = join(dir, `report-${names.join('-')}.json`);
  const r = spawnSync(process.execPath, [runner, '--label', 'fixture', '--json', json, ...names.map(bin)], { encoding: 'utf8', timeout: 60_000 });
  const report = JSON.parse(readFileSync(json, 'utf8')) as {
    passed: number;
    failed: number;
    skipped: number;
    results: { name: string; status: string; reason?: string }[];
  };
  return { status: r.status, stdout: r.stdout, report, json };
}

const failures = (report: ReturnType<typeof runNative>['report']) => report.results.filter((t) => t.status === 'failed').map((t) => t.name);

describe('the native test frame (native/test/unit.h)', () => {
  it('-l lists every test with what it needs', () => {
    const out = execFileSync(bin('fixture_ok'), ['-l'], { encoding: 'utf8' });
    expect(out.trim().split('\n')).toEqual(['passes', 'skips', 'breaks', 'needs-root  needs: root']);
  });
  it('-f runs only the matching tests; a filter matching nothing is an error', () => {
    const out = execFileSync(bin('fixture_ok'), ['-f', 'pass'], { encoding: 'utf8' });
    expect(out).toMatch(/^ok 1 - passes$/m);
    expect(out).not.toMatch(/skips|breaks/);
    const none = spawnSync(bin('fixture_ok'), ['-f', 'nothing-like-this'], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    expect(none.stderr).toContain("no test matches 'nothing-like-this'");
  });
});

describe('native-runner.mjs counts every way a native test fails', () => {
  it('a passing binary: its passes, and its skips with their reasons', () => {
    const { status, report } = runNative(['fixture_ok']);
    expect(status).toBe(0);
    expect(report.failed).toBe(0);
    const skips = report.results.filter((t) => t.status === 'skipped');
    expect(skips).toContainEqual({ name: 'fixture_ok: skips', status: 'skipped', reason: "the fixture's feature is absent" });
    if (!asRoot) expect(skips).toContainEqual({ name: 'fixture_ok: needs-root', status: 'skipped', reason: 'needs root' });
    expect(report.passed).toBe(asRoot ? 3 : 2);
  });

  const cases: [string, RegExp][] = [
    ['fixture_fail', /^fixture_fail: breaks \(1 of 1 checks failed\)$/],
    ['fixture_crash', /^fixture_crash: killed by SIGSEGV during breaks$/],
    ['fixture_overflow_asan', /^fixture_overflow_asan: AddressSanitizer report during breaks$/],
    ['fixture_leak_asan', /^fixture_leak_asan: LeakSanitizer report$/],
    ['fixture_race_tsan', /^fixture_race_tsan: ThreadSanitizer report$/],
    ['fixture_no_check', /^fixture_no_check: breaks \(it ran no check\)$/],
    ['fixture_exit_early', /^fixture_exit_early: ended without its closing summary during breaks$/],
  ];
  for (const [name, want] of cases) {
    it(`${name}: counted as failed, named, non-zero exit`, () => {
      const { status, report, stdout } = runNative([name]);
      expect(status, stdout).toBe(1);
      expect(
        failures(report).some((f) => want.test(f)),
        `${failures(report).join('; ')}\n${stdout}`,
      ).toBe(true);
      expect(stdout).toMatch(/^# native \(fixture\): \d+ passed, [1-9]\d* failed, \d+ skipped$/m);
    });
  }
});

describe('summary.mjs: the closing line of npm test', () => {
  it('adds the parts, names each failure and skip, and exits non-zero', () => {
    const { json } = runNative(['fixture_ok', 'fixture_crash', 'fixture_overflow_asan']);
    const r = spawnSync(process.execPath, [summary, '--native', json], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = r.stdout.trim().split('\n');
    // ok: passes, breaks, needs-root (root); crash: passes; overflow: passes.
    const passed = (asRoot ? 3 : 2) + 1 + 1;
    expect(lines.at(-1)).toBe(`${passed} passed, 2 failed, ${asRoot ? 3 : 4} skipped`);
    expect(r.stdout).toContain("native (fixture) fixture_ok: skips: the fixture's feature is absent");
    expect(r.stdout).toContain('native (fixture) fixture_crash: killed by SIGSEGV during breaks');
    expect(r.stdout).toContain('native (fixture) fixture_overflow_asan: AddressSanitizer report during breaks');
  });
  it('a missing report is a failure, not a silent zero', () => {
    const r = spawnSync(process.execPath, [summary, '--native', join(dir, 'no-such.json')], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('0 passed, 1 failed, 0 skipped');
  });
  it("vitest's part: a skip needs a reason from the skip log, a file that fails to load counts, and so does a bad exit", () => {
    const assertion = (title: string, status: string) => ({ title, fullName: title, status });
    const vitest = join(dir, 'vitest.json');
    writeFileSync(
      vitest,
      JSON.stringify({
        testResults: [
          {
            name: '/x/test/a.test.ts',
            status: 'passed',
            assertionResults: [assertion('works', 'passed'), assertion('needs nbdkit', 'skipped'), assertion('unexplained', 'skipped')],
          },
          { name: '/x/test/b.test.ts', status: 'failed', message: 'SyntaxError: nope', assertionResults: [] },
        ],
      }),
    );
    const skips = join(dir, 'skips.jsonl');
    writeFileSync(skips, JSON.stringify({ file: 'a.test.ts', title: 'needs nbdkit', reason: 'nbdkit is not installed' }) + '\n');
    const r = spawnSync(process.execPath, [summary, '--vitest', vitest, '--vitest-exit', '1', '--skips', skips], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stdout).toContain('test/a.test.ts > needs nbdkit: nbdkit is not installed');
    expect(r.stdout).toContain('test/a.test.ts > unexplained: skipped without a reason');
    expect(r.stdout).toContain('test/b.test.ts: SyntaxError: nope');
    expect(r.stdout.trim().split('\n').at(-1)).toBe('1 passed, 2 failed, 2 skipped');
    const clean = spawnSync(process.execPath, [summary, '--vitest', vitest, '--vitest-exit', '1'], { encoding: 'utf8' });
    expect(clean.stdout).toContain('needs nbdkit: no reason given');
  });
});
