// Remote faults against a real server process (test/fault-server.ts): the
// NBD server dies, stalls, trickles, answers short, oversized, malformed, resets,
// answers EIO, or sends bytes that do not verify. For every pull strategy and a write
// tracker, `faultlab bench --remote` must end by itself within the fetch
// timeout plus a small bound, exit non-zero with one line naming the strategy,
// the offset and the cause, and leave no process behind. The runner must
// record such cells as failed and go on with the matrix.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsvTable } from '../analysis/csv.js';
import { CLI, kernelHasUffdMove } from './helpers.js';
import { processesWith, startFaultServer, type FaultMode, type FaultServer } from './faults.js';

// Long enough that a loaded CI machine finishes the NBD handshake in time, short enough to keep the file quick.
const FETCH_TIMEOUT = 1000;
const TIMED_OUT = new RegExp(`timeout after ${FETCH_TIMEOUT} ms`);
/** Wall-time slack over (a healthy run + the fetch timeout): process start-up noise on a loaded 2-core CI. */
const SLACK_MS = 1500;
const AFTER = 8; // the fault server serves 8 data requests per connection, then misbehaves

interface Outcome {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run the CLI; a run still going after `killAfterMs` is killed (and the test then fails on its signal). */
function faultlabAsync(args: string[], killAfterMs = 30_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr, ms: performance.now() - t0 });
    });
  });
}

interface Target {
  strategy: string;
  /** How tests name it (a strategy and its variant). */
  label: string;
  args: string[];
  /** The offset the first failing request names (the 9th chunk for sequential reads). */
  offset: RegExp;
}

const read = (strategy: string, variant: string[] = []): Target => ({
  strategy,
  label: [strategy, ...variant].join(' '),
  args: ['--strategy', strategy, '--scenario', 'read-seq', ...variant],
  offset: new RegExp(`offset 0x${(AFTER * 4096).toString(16)}\\b`),
});
const tracker = (strategy: string): Target => ({
  strategy,
  label: strategy,
  args: ['--strategy', strategy, '--scenario', 'write-track'],
  offset: /(offset |push of )0x[0-9a-f]+/,
});

const benchArgs = (t: Target, remote: string) => [
  'bench',
  ...t.args,
  '--source',
  'remote',
  '--remote',
  remote,
  '--region',
  '1MiB',
  '--fetch-timeout',
  String(FETCH_TIMEOUT),
  '--json',
];

interface Case {
  mode: FaultMode;
  cause: RegExp;
  exit: number;
  /** Ends by the fetch timeout (so it takes at least that long). */
  timeout?: boolean;
  /** No fault is ever served (the server never sends its greeting): no offset to name. */
  noOffset?: boolean;
  /** The request that fails is a later one than the misbehaving one (oversized: NBD replies carry no length, so the extra bytes are met as the next reply): any offset. */
  anyOffset?: boolean;
}

const CASES: Case[] = [
  { mode: 'die', cause: /server closed the connection|connection reset by the server/, exit: 1 },
  { mode: 'stall', cause: TIMED_OUT, exit: 1, timeout: true },
  {
    mode: 'silent',
    cause: new RegExp(`no answer within ${FETCH_TIMEOUT} ms|did not answer the NBD handshake: ${TIMED_OUT.source}`),
    exit: 1,
    timeout: true,
    noOffset: true,
  },
  { mode: 'short', cause: TIMED_OUT, exit: 1, timeout: true },
  { mode: 'trickle', cause: TIMED_OUT, exit: 1, timeout: true },
  { mode: 'oversized', cause: /malformed response: reply magic 0x/, exit: 1, anyOffset: true },
  { mode: 'malformed', cause: /malformed response: reply magic 0xeeeeeeee/, exit: 1 },
  { mode: 'reset', cause: /connection reset by the server/, exit: 1 },
  { mode: 'wrong', cause: /verification FAILED/, exit: 3 },
  { mode: 'eio', cause: /server answered EIO to (READ|WRITE) of \d+ bytes/, exit: 1 },
];

// uffd with UFFDIO_MOVE unblocks a failed fault its own way (zero pages into the
// anonymous region, the mirror's pages left where they are).
// (Where the kernel lacks UFFDIO_MOVE, test/design-space.test.ts checks the refusal instead.)
// uffd with prefetch: the engine's own connection fails too, and its installer
// thread (UFFDIO_COPY) must give back what it holds; which request fails first
// is a race between the engine and the fault path, so any offset is named.
const TARGETS: Target[] = [
  read('uffd'),
  { ...read('uffd', ['--prefetch', 'ahead:8']), offset: /offset 0x[0-9a-f]+\b/ },
  ...(kernelHasUffdMove() ? [read('uffd', ['--uffd-install', 'move'])] : []),
  read('sigsegv'),
  tracker('uffd-wp'),
];

/**
 * The same run against a healthy server, timed inside the calling test: the
 * baseline a faulty run's wall time is judged against (plus the fetch timeout
 * and SLACK_MS), never a time another test left behind.
 */
async function healthyRunMs(t: Target): Promise<number> {
  const s = await startFaultServer('ok');
  try {
    const r = await faultlabAsync(benchArgs(t, s.address));
    expect(r.status, `the healthy baseline run failed: ${r.stderr}`).toBe(0);
    expect(JSON.parse(r.stdout.trim().split('\n').pop()!).verified).toBe(true);
    return r.ms;
  } finally {
    await s.close();
  }
}

describe('a healthy fault server (the control)', () => {
  it('serves uffd and sigsegv runs that verify', async () => {
    for (const t of [read('uffd'), read('sigsegv')]) expect(await healthyRunMs(t)).toBeGreaterThan(0);
  });

  it('one larger server serves runs of smaller regions (a prefix of its region): bench and a matrix of two sizes verify; a matrix that also writes runs its writing cells last', async () => {
    const s = await startFaultServer('ok', { region: 4 << 20 });
    const dir = mkdtempSync(join(tmpdir(), 'faultlab-prefix-'));
    try {
      for (const t of [read('uffd'), read('sigsegv')]) {
        const r = await faultlabAsync(benchArgs(t, s.address));
        expect(r.status, r.stderr).toBe(0);
        const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
        expect(j).toMatchObject({ verified: true, region_bytes: 1 << 20, bytes_fetched: 1 << 20 });
      }
      const file = join(dir, 'sizes.json');
      writeFileSync(
        file,
        JSON.stringify({
          name: 'sizes',
          description: 'two region sizes, one server',
          groups: [{ name: 'g', scenario: 'read-seq', strategy: 'uffd', source: 'remote', region: ['256KiB', '2MiB'] }],
        }),
      );
      const r = await faultlabAsync(['run', '--matrix', file, '--out', dir, '--run-id', 'sizes', '--remote', s.address], 60_000);
      expect(r.status, r.stdout + r.stderr).toBe(0);
      const rows = parseCsvTable(readFileSync(join(dir, 'sizes', 'runs.csv'), 'utf8')).rows;
      expect(rows.map((row) => [row['region_bytes'], row['status'], row['verified']]).sort((a, b) => Number(a[0]) - Number(b[0]))).toEqual([
        [String(256 << 10), 'ok', 'true'],
        [String(2 << 20), 'ok', 'true'],
      ]);
      // A matrix listing a writing group first: with one external server, its
      // reads still run first and verify (a write-track run changes the contents).
      const mixed = join(dir, 'mixed.json');
      writeFileSync(
        mixed,
        JSON.stringify({
          name: 'mixed',
          description: 'writes listed before reads',
          groups: [
            { name: 'w', scenario: 'write-track', strategy: 'uffd-wp', source: 'remote', region: '1MiB' },
            { name: 'r', scenario: 'read-seq', strategy: ['uffd', 'sigsegv'], source: 'remote', region: '1MiB' },
          ],
        }),
      );
      const m = await faultlabAsync(['run', '--matrix', mixed, '--out', dir, '--run-id', 'mixed', '--remote', s.address], 60_000);
      expect(m.status, m.stdout + m.stderr).toBe(0);
      const mrows = parseCsvTable(readFileSync(join(dir, 'mixed', 'runs.csv'), 'utf8')).rows;
      expect(mrows.map((row) => [row['scenario'], row['verified']])).toEqual([
        ['read-seq', 'true'],
        ['read-seq', 'true'],
        ['write-track', 'true'],
      ]);
      // Larger than the server's region: refused, naming both sizes.
      const big = await faultlabAsync(['bench', ...read('uffd').args, '--source', 'remote', '--remote', s.address, '--region', '8MiB', '--json']);
      expect(big.status).not.toBe(0);
      expect(big.stderr).toMatch(/server region is 4194304 bytes, smaller than this run's 8388608/);
    } finally {
      await s.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

for (const c of CASES) {
  describe(`remote fault '${c.mode}'`, () => {
    let server: FaultServer | null = null;
    // One server per mode serves every strategy (faults count per connection);
    // `die` kills its server, so each strategy gets its own.
    beforeAll(async () => {
      if (c.mode !== 'die') server = await startFaultServer(c.mode, { after: AFTER });
    });
    afterAll(async () => server?.close());

    for (const t of TARGETS) {
      it(`${t.label}: ends within the fetch timeout + ${SLACK_MS} ms, exit ${c.exit}, one line naming strategy${c.noOffset ? '' : ', offset'} and cause; nothing left running`, async () => {
        const healthyMs = await healthyRunMs(t);
        const s = server ?? (await startFaultServer(c.mode, { after: AFTER }));
        try {
          const r = await faultlabAsync(benchArgs(t, s.address));
          expect(r.signal, 'the run had to be killed: something stayed blocked').toBeNull();
          expect(r.status, r.stderr).toBe(c.exit);
          const lines = r.stderr.trim().split('\n');
          expect(lines.length, r.stderr).toBe(1);
          expect(lines[0]).toMatch(new RegExp(`^faultlab: ${t.strategy}: `));
          expect(lines[0]).toMatch(c.cause);
          if (!c.noOffset) expect(lines[0]).toMatch(c.anyOffset ? /(offset |push of )0x[0-9a-f]+/ : t.offset);
          expect(r.ms, `healthy run ${healthyMs} ms`).toBeLessThan(healthyMs + FETCH_TIMEOUT + SLACK_MS);
          if (c.timeout) expect(r.ms).toBeGreaterThanOrEqual(FETCH_TIMEOUT);
          if (c.mode === 'wrong') expect(JSON.parse(r.stdout.trim().split('\n').pop()!).verified).toBe(false);
          if (c.mode === 'die') expect(await s.exited).toBe('SIGKILL');
          expect(processesWith(CLI, s.address)).toEqual([]);
        } finally {
          if (s !== server) await s.close();
        }
      });
    }
  });
}

describe('the runner under remote faults', () => {
  const matrix = {
    name: 'faults',
    description: 'remote cells against a misbehaving server, then a local cell',
    groups: [
      { name: 'remote', scenario: 'read-seq', strategy: ['uffd', 'sigsegv'], source: 'remote', region: '1MiB', fetch_timeout: FETCH_TIMEOUT },
      { name: 'local', scenario: 'read-seq', strategy: 'memory', region: '1MiB' },
    ],
  };

  for (const [mode, cause] of [
    ['stall', TIMED_OUT],
    ['die', /server closed the connection|connection reset by the server|cannot connect/],
    ['wrong', /verification FAILED at offset 0x8000/],
  ] as [FaultMode, RegExp][]) {
    it(`'${mode}': every remote cell is recorded failed with its message, the local cell still runs, no child is left`, async () => {
      const dir = mkdtempSync(join(tmpdir(), 'faultlab-faults-'));
      const file = join(dir, 'faults.json');
      writeFileSync(file, JSON.stringify(matrix));
      const healthyMs = Math.max(await healthyRunMs(read('uffd')), await healthyRunMs(read('sigsegv')));
      const s = await startFaultServer(mode, { after: AFTER });
      try {
        const r = await faultlabAsync(['run', '--matrix', file, '--out', dir, '--run-id', mode, '--remote', s.address], 60_000);
        expect(r.signal).toBeNull();
        expect(r.status, r.stderr).toBe(1);
        expect(r.stdout).toMatch(/2 failed cell/);
        // Two remote cells, each bounded by its fetch timeout, plus the local one.
        expect(r.ms, `healthy bench run ${healthyMs} ms`).toBeLessThan(3 * (healthyMs + FETCH_TIMEOUT + SLACK_MS));
        const t = parseCsvTable(readFileSync(join(dir, mode, 'runs.csv'), 'utf8'));
        const rows = (s2: string) => t.rows.filter((row) => row['strategy'] === s2);
        for (const strategy of ['uffd', 'sigsegv']) {
          expect(rows(strategy).length).toBe(1);
          expect(rows(strategy)[0]['status']).toBe('failed');
          expect(rows(strategy)[0]['verified']).toBe('false');
          expect(rows(strategy)[0]['message']).toMatch(new RegExp(`^${strategy}: `));
          expect(rows(strategy)[0]['message']).toMatch(cause);
        }
        expect(rows('memory')[0]['status']).toBe('ok');
        // uffd_path is the path the cell's own region used (memory opens none), not doctor's.
        expect(rows('memory')[0]['uffd_path']).toBe('unused');
        if (mode === 'wrong') expect(['syscall', 'user-mode-only', 'dev-userfaultfd']).toContain(rows('uffd')[0]['uffd_path']);
        expect(JSON.parse(readFileSync(join(dir, mode, 'env.json'), 'utf8'))).toMatchObject({ complete: true, failed_cells: 2 });
        expect(processesWith(CLI, s.address)).toEqual([]);
        expect(processesWith(CLI, 'bench', '--json', '--fetch-timeout', String(FETCH_TIMEOUT), '--strategy', 'memory')).toEqual([]);
      } finally {
        await s.close();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  }
});
