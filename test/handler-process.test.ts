// Issue 19, part 1, through the CLI: uffd's handler in a process of its own
// (--handler process) reads real regions from the local source and the remote
// and verifies; prefetch runs in the handler process; what cannot work is
// refused with its reason; a handler process killed mid-run fails the run
// with one line, promptly; the matrix and the figure.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { compile } from 'vega-lite';
import { loadMatrix } from '../harness/matrix.js';
import { buildFigures } from '../analysis/figures/index.js';
import { rowsFromCsv, REQUIRED_COLUMNS } from '../analysis/runs.js';
import { isThesisLike } from '../analysis/design-space.js';
import { CLI, faultlab, lastJson } from './helpers.js';

const bench = (args: string[]) => faultlab(['bench', '--strategy', 'uffd', '--handler', 'process', '--json', ...args], {}, 120_000);

describe('--handler process reads and verifies', () => {
  for (const source of ['local', 'remote'])
    for (const install of ['copy', 'continue'])
      it(`${source}, --uffd-install ${install}`, () => {
        const r = bench(['--source', source, '--uffd-install', install, '--region', '4MiB']);
        expect(r.status, r.stderr).toBe(0);
        const j = lastJson(r.stdout);
        expect(j.verified).toBe(true);
        expect(j.handler).toBe('process');
        expect(j.faults).toBe(1024);
        expect(Number(j.fault_ns_p50)).toBeGreaterThan(0); // timed in the application
        expect(Number(j.install_ns_p50)).toBeGreaterThan(0); // timed in the handler process
      });

  it('remote at RTT 2 ms, first-chunk: about one RTT, as with a thread', () => {
    const r = bench(['--source', 'remote', '--rtt', '2', '--scenario', 'first-chunk', '--region', '1MiB']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(Number(j.first_access_ns)).toBeGreaterThan(1.5e6);
  });

  for (const prefetch of ['ahead:8', 'background'])
    it(`--prefetch ${prefetch}: the engine runs in the handler process, its counts come back`, () => {
      const r = bench(['--source', 'remote', '--prefetch', prefetch, '--chunk', '16KiB', '--region', '4MiB', '--cpus', 'free']);
      expect(r.status, r.stderr).toBe(0);
      const j = lastJson(r.stdout);
      expect(j.verified).toBe(true);
      expect(Number(j.prefetched)).toBeGreaterThan(0);
      expect(Number(j.faults) + Number(j.prefetched)).toBe(256);
    });

  it('the default is the thread, and says so', () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--region', '1MiB', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(lastJson(r.stdout).handler).toBe('thread');
    const s = faultlab(['bench', '--strategy', 'sigsegv', '--region', '1MiB', '--json']);
    expect(lastJson(s.stdout).handler).toBe('none');
  });
});

describe('refused with the reason, in one line', () => {
  const cases: [string, string[], RegExp][] = [
    ['sigsegv', ['--strategy', 'sigsegv', '--handler', 'process'], /sigsegv's handler is a signal handler, which runs on the faulting thread/],
    ['move', ['--strategy', 'uffd', '--handler', 'process', '--uffd-install', 'move'], /UFFDIO_MOVE moves pages within the application's own memory/],
    ['memory', ['--strategy', 'memory', '--handler', 'process'], /--handler is for uffd, not memory/],
  ];
  for (const [name, args, re] of cases)
    it(name, () => {
      const r = faultlab(['bench', ...args]);
      expect(r.status).not.toBe(0);
      expect(r.stderr).toMatch(re);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    });
  it('a value that is neither thread nor process (yargs names the choices)', () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--handler', 'fork']);
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/Argument: handler, Given: "fork", Choices: "thread", "process"/);
  });
});

/** Processes named faultlab-handler (comm is cut to 15 characters) descended from pid. */
function handlersUnder(pid: number): number[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const close = stat.lastIndexOf(')');
      comm.set(Number(d), stat.slice(stat.indexOf('(') + 1, close));
      parent.set(Number(d), Number(stat.slice(close + 2).split(' ')[1]));
    } catch {
      // gone meanwhile
    }
  }
  const under = (p: number): boolean => {
    for (let q = parent.get(p); q !== undefined && q > 1; q = parent.get(q)) if (q === pid) return true;
    return false;
  };
  return [...comm.entries()].filter(([p, c]) => c === 'faultlab-handle' && under(p)).map(([p]) => p);
}

describe('a handler process that dies', () => {
  it('fails the run with one line within the fetch timeout, and leaves no process behind', async () => {
    // 2048 faults at 2 ms each: seconds of run, so the kill lands mid-run.
    const child = spawn(
      process.execPath,
      [CLI, 'bench', '--strategy', 'uffd', '--handler', 'process', '--source', 'remote', '--rtt', '2', '--region', '8MiB', '--fetch-timeout', '5000', '--json'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stderr = '';
    child.stderr.on('data', (b) => (stderr += b));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    let victims: number[] = [];
    for (let i = 0; i < 200 && victims.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      victims = handlersUnder(child.pid!);
    }
    expect(victims, 'a handler process under the CLI').toHaveLength(1);
    await new Promise((r) => setTimeout(r, 400)); // into the run
    process.kill(victims[0], 'SIGKILL');
    const killedAt = Date.now();
    const code = await exited;
    const took = Date.now() - killedAt;
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/the handler process \(pid \d+\) was killed by signal 9 \(Killed\) during the run; .* not verified/);
    expect(
      stderr
        .trim()
        .split('\n')
        .filter((l) => /handler process/.test(l)),
    ).toHaveLength(1);
    expect(took, 'failed within the 5 s fetch timeout').toBeLessThan(5000);
    expect(handlersUnder(process.pid)).toHaveLength(0);
  }, 60_000);
});

describe('matrix handler and its figure', () => {
  it('loads: uffd thread and process cells, sigsegv without a handler; --filter handler=process', () => {
    const m = loadMatrix('handler');
    const process_ = m.cells.filter((c) => c.params.handler === 'process');
    expect(process_.length).toBeGreaterThan(0);
    expect(m.cells.filter((c) => c.params.handler === 'thread')).toHaveLength(process_.length);
    expect(m.cells.filter((c) => c.params.strategy === 'sigsegv').every((c) => c.params.handler === undefined)).toBe(true);
    expect(Math.min(...m.cells.map((c) => c.params.repeat))).toBeGreaterThanOrEqual(5);
    const listed = faultlab(['run', '--matrix', 'handler', '--filter', 'handler=process', '--list']);
    expect(listed.status, listed.stderr).toBe(0);
    expect(listed.stdout.trim().split('\n')).toHaveLength(process_.length);
  });

  it('handler-process: thread against process per condition; absent without process rows; process rows are not thesis-like', () => {
    const row = (o: Record<string, string | number>) => ({
      ...Object.fromEntries(REQUIRED_COLUMNS.map((c) => [c, 0])),
      run_id: 'h',
      status: 'ok',
      message: '',
      strategy: 'uffd',
      source: 'local',
      cpus: 'same',
      prefetch: 'none',
      app_threads: 1,
      uffd_install: 'copy',
      huge: 'none',
      chunk_bytes: 4096,
      region_bytes: 1 << 24,
      verified: 'true',
      ...o,
    });
    const rows: Record<string, string | number>[] = [];
    for (const handler of ['thread', 'process'])
      for (const rep of [0, 1, 2]) {
        rows.push(row({ handler, scenario: 'read-seq', fault_ns_p50: handler === 'thread' ? 9000 + rep : 11000 + rep, repetition: rep }));
        rows.push(row({ handler, scenario: 'first-chunk', first_access_ns: 40000 + rep, repetition: rep }));
      }
    rows.push(row({ strategy: 'sigsegv', handler: 'none', scenario: 'read-seq', fault_ns_p50: 7000, uffd_install: 'none' }));
    const csv = (rs: Record<string, string | number>[]) => `${Object.keys(rs[0]).join(',')}\n${rs.map((r) => Object.values(r).join(',')).join('\n')}\n`;
    const parsed = rowsFromCsv(csv(rows));
    expect(isThesisLike(parsed.find((r) => r.designSpace?.handler === 'process')!)).toBe(false);
    expect(isThesisLike(parsed.find((r) => r.designSpace?.handler === 'thread')!)).toBe(true);
    const fig = buildFigures(parsed).figures.find((f) => f.name === 'handler-process');
    expect(fig).toBeDefined();
    expect(() => compile(fig!.spec)).not.toThrow();
    const pts = (fig!.spec as { data: { values: { method: string; measure: string; median: number }[] } }).data.values;
    const at = (method: string, measure: RegExp) => pts.find((p) => p.method === method && measure.test(p.measure))?.median;
    expect(at('uffd, handler thread', /per-fault/)).toBe(9.001);
    expect(at('uffd, handler process', /per-fault/)).toBe(11.001);
    expect(at('sigsegv (reference)', /per-fault/)).toBe(7);
    const threadOnly = rowsFromCsv(csv(rows.filter((r) => r.handler !== 'process')));
    expect(buildFigures(threadOnly).skipped).toContain('handler-process');
  });
});
