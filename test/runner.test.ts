// The matrix runner end to end: real child processes, a real chunk server,
// a CSV whose rows all verify; crashed cells recorded; interruption and resume.
import { describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsvTable } from '../analysis/csv.js';
import { CLI, faultlab } from './helpers.js';

const tiny = {
  name: 'tiny',
  description: 'uffd and sigsegv, local and remote, 0 and 2 ms',
  groups: [
    { name: 'pull', scenario: 'read-seq', strategy: ['uffd', 'sigsegv'], source: ['local', 'remote'], rtt: [0, 2], region: '256KiB', repeat: 2 },
    { name: 'first', scenario: 'first-chunk', strategy: ['memory', 'eager'], source: 'remote', rtt: 0, region: '1MiB', repeat: 5 },
    { name: 'floors', kind: 'floors', cpus: 'same', count: 256, repeat: 1 },
    { name: 'transport', kind: 'transport', chunk: '4KiB', rtt: 0, region: '1MiB', count: 50, repeat: 2 },
  ],
};

function setup(matrix: object = tiny) {
  const dir = mkdtempSync(join(tmpdir(), 'faultlab-run-'));
  const file = join(dir, 'tiny.json');
  writeFileSync(file, JSON.stringify(matrix));
  return { dir, file };
}

const table = (dir: string, id: string) => parseCsvTable(readFileSync(join(dir, id, 'runs.csv'), 'utf8'));
const col = (t: ReturnType<typeof parseCsvTable>, name: string) => t.rows.map((r) => r[name]);
const env = (dir: string, id: string) => JSON.parse(readFileSync(join(dir, id, 'env.json'), 'utf8'));

describe('faultlab run', () => {
  it('a tiny matrix writes a CSV whose rows all verify, and a complete env.json', () => {
    const { dir, file } = setup();
    const r = faultlab(['run', '--matrix', file, '--out', dir, '--run-id', 'ok']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/ETA/);
    const t = table(dir, 'ok');
    // 2 strategies x (local 0 ms + remote 0, 2 ms) x 2 reps + memory + eager (5 each) + floors + transport
    expect(col(t, 'status').every((s) => s === 'ok')).toBe(true);
    expect(col(t, 'verified').every((v) => v === 'true')).toBe(true);
    const strategies = new Set(col(t, 'strategy'));
    for (const s of ['uffd', 'sigsegv', 'memory', 'eager', 'floor-uffd', 'floor-sigsegv', 'tcp']) expect(strategies).toContain(s);
    const remote2 = t.rows.filter((row) => row['rtt_ms'] === '2');
    expect(remote2.length).toBe(4);
    for (const row of remote2) expect(Number(row['rtt_measured_ms'])).toBeGreaterThan(1.9);
    // The runner's own server delays: remote rows say server-delay (not 'external'), local ones none.
    for (const row of t.rows.filter((x) => x['source'] === 'remote')) expect(row['latency']).toBe('server-delay');
    for (const row of t.rows.filter((x) => x['source'] === 'local')) expect(row['latency']).toBe('none');
    const e = env(dir, 'ok');
    expect(e.complete).toBe(true);
    expect(e.kernel).toBeTruthy();
    expect(col(t, 'kernel').every((k) => k === e.kernel)).toBe(true);
    // The uffd features doctor found (MISSING at least, where userfaultfd opens, as in CI), in env.json and every row.
    expect(e.uffd_features).toEqual(e.doctor.uffd_api.features);
    expect(e.uffd_features).toContain('MISSING');
    expect(col(t, 'uffd_features').every((f) => f === e.uffd_features.join('|'))).toBe(true);
  });

  it('--latency client-delay: remote cells hold the RTT in the C client (servers answer at once); rows and env.json say so', () => {
    const { dir, file } = setup();
    const r = faultlab([
      'run',
      '--matrix',
      file,
      '--out',
      dir,
      '--run-id',
      'cd',
      '--filter',
      'group=pull',
      '--filter',
      'source=remote',
      '--latency',
      'client-delay',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const t = table(dir, 'cd');
    expect(t.rows.length).toBe(8); // 2 strategies x 2 RTTs x 2 reps
    expect(col(t, 'verified').every((v) => v === 'true')).toBe(true);
    expect(col(t, 'latency').every((l) => l === 'client-delay')).toBe(true);
    for (const row of t.rows.filter((x) => x['rtt_ms'] === '2')) {
      expect(Number(row['rtt_measured_ms'])).toBeGreaterThanOrEqual(2);
      expect(Number(row['rtt_measured_ms'])).toBeLessThan(2.5);
      expect(Number(row['fault_ns_p50'])).toBeGreaterThanOrEqual(2e6); // the servers answer at once: the wait is the client's
    }
    expect(env(dir, 'cd').latency).toBe('client-delay');
  });

  it('a cell that crashes is recorded as failed and the matrix goes on', () => {
    const { dir, file } = setup();
    const r = faultlab(['run', '--matrix', file, '--out', dir, '--run-id', 'crash', '--filter', 'group=pull'], { FAULTLAB_TEST_CRASH: 'sigsegv' });
    expect(r.status).toBe(1);
    const t = table(dir, 'crash');
    const byStrategy = (s: string) => t.rows.filter((row) => row['strategy'] === s);
    expect(byStrategy('sigsegv').length).toBe(3);
    for (const row of byStrategy('sigsegv')) {
      expect(row['status']).toBe('failed');
      expect(row['message']).toMatch(/SIGSEGV/);
    }
    expect(byStrategy('uffd').every((row) => row['status'] === 'ok')).toBe(true);
    expect(env(dir, 'crash').failed_cells).toBe(3);
  });

  it('an interrupted run keeps its rows, says incomplete, and --resume finishes it', async () => {
    const { dir, file } = setup();
    const child = spawn(process.execPath, [CLI, 'run', '--matrix', file, '--out', dir, '--run-id', 'int', '--filter', 'group=pull'], { stdio: 'ignore' });
    const csv = join(dir, 'int', 'runs.csv');
    // Interrupt once the first cell's rows are in.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(csv) && readFileSync(csv, 'utf8').trim().split('\n').length >= 3) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        }
      }, 20);
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(env(dir, 'int').complete).toBe(false);
    const before = table(dir, 'int').rows.length;
    expect(before).toBeGreaterThan(0);
    const r = faultlab(['run', '--matrix', file, '--out', dir, '--run-id', 'int', '--filter', 'group=pull', '--resume']);
    expect(r.status, r.stderr).toBe(0);
    const t = table(dir, 'int');
    expect(env(dir, 'int').complete).toBe(true);
    // Every cell exactly once: 6 cells x 2 repetitions.
    expect(t.rows.length).toBe(12);
    expect(new Set(col(t, 'cell_id')).size).toBe(6);
  });

  it('an invalid matrix is rejected with the path and field at fault', () => {
    const { dir, file } = setup({ name: 'bad', groups: [{ name: 'g', strategy: ['uffd', 'quantum'], scenario: 'read-seq' }] });
    const r = faultlab(['run', '--matrix', file, '--out', dir]);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${file}: groups[0].strategy[1] must be one of`);
  });

  it('a results directory that is not writable is refused before anything runs', () => {
    const { dir, file } = setup();
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    chmodSync(ro, 0o500);
    // root ignores permissions: make it a file instead, which no one can write into.
    const target = process.getuid?.() === 0 ? file : ro;
    const r = faultlab(['run', '--matrix', file, '--out', target]);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/not writable/);
  });

  it('on a terminal (a pseudo-terminal from script(1)), a long cell shows its accesses and ETA while it runs, and the CSV is unchanged by it', () => {
    // 256 faults at 10 ms: about 2.6 s, so the cell reports at least once (every 2 s).
    const { dir, file } = setup({
      name: 'long',
      description: 'one cell of about 3 s',
      groups: [{ name: 'g', scenario: 'read-seq', strategy: 'sigsegv', source: 'remote', rtt: 10, region: '1MiB' }],
    });
    const cmd = [process.execPath, CLI, 'run', '--matrix', file, '--out', dir, '--run-id', 'tty'].map((a) => `'${a}'`).join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], { encoding: 'utf8', timeout: 60_000 });
    expect(r.error, 'script(1) from util-linux runs this test').toBeUndefined();
    expect(r.status, r.stdout).toBe(0);
    expect(r.stdout).toMatch(
      /sigsegv read-seq remote rtt=10ms region=1MiB chunk=4KiB cpus=same \.\.\. repetition 1\/1: \d+\/256 accesses \(\d+%\) in \d+s, ETA \d+s/,
    );
    const t = table(dir, 'tty');
    expect(col(t, 'status')).toEqual(['ok']);
    expect(col(t, 'message')).toEqual(['']);
    expect(col(t, 'verified')).toEqual(['true']);
  });

  it('--filter selects cells and --repeat overrides repetitions (--list)', () => {
    const r = faultlab(['run', '--matrix', 'thesis', '--filter', 'strategy=uffd', '--filter', 'rtt=40', '--repeat', '2', '--list']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines.length).toBe(2); // first-chunk and throughput at 40 ms
    for (const l of lines) {
      expect(l).toContain('"strategy":"uffd"');
      expect(l).toContain('"rttMs":40');
      expect(l).toContain('"repeat":2');
    }
  });
});
