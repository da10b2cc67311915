// The CLI as a user meets it: bench's JSON contract, doctor, floors, and one
// clear line plus a non-zero exit for bad input.
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import { faultlab, lastJson } from './helpers.js';

const BENCH_KEYS = [
  'strategy',
  'scenario',
  'source',
  'region_bytes',
  'chunk_bytes',
  'rtt_ms',
  'rtt_measured_ms',
  'cpus',
  'handler_threads',
  'faults',
  'bytes_fetched',
  'first_access_ns',
  'total_ns',
  'throughput_mibps',
  'fault_ns_p50',
  'fault_ns_p99',
  'fault_ns_max',
  'verified',
  'repeat',
];

describe('faultlab bench --json', () => {
  it('uffd read-seq local: every key, medians over 3 fresh regions, verified', () => {
    const r = faultlab([
      'bench',
      '--strategy',
      'uffd',
      '--scenario',
      'read-seq',
      '--source',
      'local',
      '--region',
      '4MiB',
      '--chunk',
      '4KiB',
      '--cpus',
      'same',
      '--repeat',
      '3',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    for (const k of BENCH_KEYS) expect(j, k).toHaveProperty(k);
    expect(j.verified).toBe(true);
    expect(j.faults).toBe(1024);
    expect((j.reps as unknown[]).length).toBe(3);
  });

  it('sigsegv read-random over a remote (embedded server) at 2 ms RTT records the measured RTT', () => {
    const r = faultlab(['bench', '--strategy', 'sigsegv', '--scenario', 'read-random', '--source', 'remote', '--rtt', '2', '--region', '64KiB', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.faults).toBe(16);
    expect(j.rtt_measured_ms as number).toBeGreaterThan(1.9);
    expect(j.rtt_measured_ms as number).toBeLessThan(3);
    expect(j.fault_ns_p50 as number).toBeGreaterThan(2e6 * 0.95);
  });

  it('--progress: a run lasting over 2 s reports accesses done and an ETA on stderr while it runs (256 faults at 10 ms)', () => {
    const r = faultlab(['bench', '--strategy', 'sigsegv', '--source', 'remote', '--rtt', '10', '--region', '1MiB', '--progress', '--json']);
    expect(r.status, r.stderr).toBe(0);
    expect(lastJson(r.stdout).verified).toBe(true);
    const lines = r.stderr.trim().split('\n');
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
    const done = lines.map((line) => {
      const m = /^bench: repetition 1\/1: (\d+)\/256 accesses \(\d+%\) in \d+s, ETA \d+s$/.exec(line);
      expect(m, line).not.toBeNull();
      return Number(m![1]);
    });
    // Counted while the run goes: the first report (at 2 s of about 2.6) sees some accesses done, not all.
    expect(done[0]).toBeGreaterThan(0);
    expect(done[0]).toBeLessThan(256);
    expect([...done].sort((a, b) => a - b)).toEqual(done);
  });

  it('first-chunk is driven by tinybench and carries its statistics', () => {
    const r = faultlab(['bench', '--strategy', 'memory', '--scenario', 'first-chunk', '--region', '1MiB', '--repeat', '20', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.bench_samples).toBe(20);
    expect(j.bench_mean_ns as number).toBeGreaterThan(0);
    expect(typeof j.bench_rme_pct).toBe('number');
  });

  it('a corrupted source byte fails verification with exit code 3', () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--region', '1MiB', '--corrupt', '4096', '--json']);
    expect(r.status).toBe(3);
    expect(lastJson(r.stdout).verified).toBe(false);
    expect(r.stderr).toMatch(/verification FAILED/);
  });
});

describe('bad input: one clear line, non-zero exit', () => {
  const cases: [string, string[], RegExp][] = [
    ['chunk not a page multiple', ['bench', '--strategy', 'uffd', '--chunk', '1000'], /not a multiple of the page size/],
    ['region of 0 bytes', ['bench', '--strategy', 'uffd', '--region', '0'], /region of 0 bytes/],
    ['unknown strategy', ['bench', '--strategy', 'teleport'], /Invalid values|teleport/],
    ['unknown scenario', ['bench', '--strategy', 'uffd', '--scenario', 'write-everything'], /Invalid values|write-everything/],
    ['malformed size', ['bench', '--strategy', 'uffd', '--region', '12 parsecs'], /bad region/],
    ['negative rtt', ['bench', '--strategy', 'uffd', '--source', 'remote', '--rtt', '-1'], /rtt -1 ms is out of range/],
    ['rtt without a remote', ['bench', '--strategy', 'uffd', '--rtt', '5'], /needs --source remote/],
    ['region larger than memory', ['bench', '--strategy', 'uffd', '--region', '4096GiB'], /more than the memory available/],
    ['unknown matrix', ['run', '--matrix', 'no-such-matrix'], /unknown matrix 'no-such-matrix'/],
    ['unknown command', ['frobnicate'], /Unknown|frobnicate/],
  ];
  for (const [what, args, msg] of cases) {
    it(what, () => {
      const r = faultlab(args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stderr.trim().split('\n').length).toBeLessThanOrEqual(2);
    });
  }
});

describe('doctor and floors', () => {
  it('doctor --json names the userfaultfd path and features', () => {
    const r = faultlab(['doctor', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(['syscall', 'user-mode-only', 'dev-userfaultfd', 'none']).toContain(j.uffd_path);
    expect(j).toHaveProperty('kernel');
    expect(j).toHaveProperty('netem');
  });

  it('doctor --json says whether the host takes back free memory (virtio-balloon free page reporting), as the system files say', async () => {
    const { offersFeature } = await import('../harness/env.js');
    expect(offersFeature('0110010100000000\n', 5)).toBe(true);
    expect(offersFeature('0110000100000000', 5)).toBe(false);
    expect(offersFeature('01', 5)).toBe(false);
    const g = lastJson(faultlab(['doctor', '--json']).stdout).guest_memory as Record<string, unknown>;
    const { readFileSync, existsSync } = await import('node:fs');
    expect(g.hypervisor).toBe(/\bhypervisor\b/.test(readFileSync('/proc/cpuinfo', 'utf8')));
    const orderFile = '/sys/module/page_reporting/parameters/page_reporting_order';
    expect(g.reporting_order).toBe(existsSync(orderFile) ? Number(readFileSync(orderFile, 'utf8')) : null);
    expect(typeof g.free_page_reporting).toBe('boolean');
    expect(g.damon_schemes).toEqual((await import('../harness/env.js')).probeDamonSchemes());
    console.log(`guest memory here: ${JSON.stringify(g)}`);
  });

  it('guest memory lists the schemes of running DAMON threads, from the sysfs tree (a kdamond that is off lists none)', async () => {
    const { probeDamonSchemes } = await import('../harness/env.js');
    const { mkdtempSync, mkdirSync, writeFileSync, rmSync } = await import('node:fs');
    const root = mkdtempSync(join(tmpdir(), 'faultlab-damon-'));
    try {
      const kdamond = (k: number, state: string, ops: string, actions: string[]) => {
        const ctx = join(root, String(k), 'contexts', '0');
        actions.forEach(
          (a, m) => (mkdirSync(join(ctx, 'schemes', String(m)), { recursive: true }), writeFileSync(join(ctx, 'schemes', String(m), 'action'), `${a}\n`)),
        );
        writeFileSync(join(root, String(k), 'state'), `${state}\n`);
        writeFileSync(join(ctx, 'operations'), `${ops}\n`);
      };
      kdamond(0, 'on', 'paddr', ['pageout', 'lru_prio']);
      kdamond(1, 'off', 'vaddr', ['hugepage']);
      writeFileSync(join(root, 'nr_kdamonds'), '2\n');
      expect(probeDamonSchemes(root)).toEqual(['paddr:pageout', 'paddr:lru_prio']);
      expect(probeDamonSchemes(join(root, 'absent'))).toEqual([]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('doctor --json uffd_installs: each install it offers runs and verifies, each it does not is refused', () => {
    const installs = lastJson(faultlab(['doctor', '--json']).stdout).uffd_installs as Record<string, boolean>;
    expect(Object.keys(installs).sort()).toEqual(['continue', 'copy', 'move']);
    for (const [install, offered] of Object.entries(installs)) {
      const r = faultlab(['bench', '--strategy', 'uffd', '--uffd-install', install, '--region', '1MiB', '--chunk', '64KiB', '--json']);
      if (offered) {
        expect(r.status, `${install}: ${r.stderr}`).toBe(0);
        expect(lastJson(r.stdout).verified, install).toBe(true);
      } else {
        expect(r.status, install).not.toBe(0);
        expect(r.stderr, install).toMatch(/faultlab: uffd: /);
      }
    }
  });

  it('floors --json measures every mechanism', () => {
    const r = faultlab(['floors', '--pages', '256', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const floors = (lastJson(r.stdout).reps as Record<string, Record<string, Record<string, number>>>[])[0].floors;
    for (const f of ['anon_touch', 'uffd', 'sigsegv', 'memcpy']) expect(floors[f].p50_ns, f).toBeGreaterThan(0);
  });

  it('floors --fetch tcp runs the handler floors only, each page fetched and verified', () => {
    const r = faultlab(['floors', '--pages', '256', '--fetch', 'tcp', '--server-cpu', '0', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const rep = (lastJson(r.stdout).reps as Record<string, unknown>[])[0];
    expect(rep).toMatchObject({ fetch: 'tcp', server_cpu: 0 });
    const floors = rep.floors as Record<string, Record<string, unknown>>;
    expect(Object.keys(floors)).toEqual(['uffd', 'sigsegv', 'sigsegv_prepopulated']);
    for (const [name, f] of Object.entries(floors)) expect(f, name).toMatchObject({ n: 256, faults: 256, verified: true });
  });

  it('floors --only runs that floor alone; a floor --fetch tcp does not run is refused in one line', () => {
    const r = faultlab(['floors', '--pages', '256', '--fetch', 'tcp', '--only', 'sigsegv', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const doc = lastJson(r.stdout);
    expect(doc.only).toBe('sigsegv');
    const floors = (doc.reps as Record<string, unknown>[])[0].floors as Record<string, Record<string, unknown>>;
    expect(Object.keys(floors)).toEqual(['sigsegv']);
    expect(floors.sigsegv).toMatchObject({ n: 256, faults: 256, verified: true });
    const bad = faultlab(['floors', '--pages', '16', '--fetch', 'tcp', '--only', 'memcpy']);
    expect(bad.status).not.toBe(0);
    expect(bad.stderr.trim()).toBe('faultlab: floors spec: fetch=tcp runs the handler floors only (uffd, sigsegv, sigsegv_prepopulated), not memcpy');
  });

  it('floors --server-cpu without --fetch tcp is refused in one line', () => {
    const r = faultlab(['floors', '--pages', '16', '--server-cpu', '0']);
    expect(r.status).not.toBe(0);
    expect(r.stderr.trim()).toBe('faultlab: --server-cpu places the server of --fetch tcp');
  });
});

describe('benchmark targets', () => {
  it('place the servers on the second CPU the process may run on, read from its affinity list', async () => {
    const { allowedCpus } = await import('../harness/targets.js');
    expect(allowedCpus('Name:\tnode\nCpus_allowed_list:\t0-3,6\n')).toEqual([0, 1, 2, 3, 6]);
    expect(allowedCpus('Cpus_allowed_list:\t2,5-6\n')).toEqual([2, 5, 6]);
    expect(allowedCpus('Cpus_allowed_list:\t2\n')[1]).toBeUndefined(); // one CPU: the servers stay unpinned
    expect(allowedCpus().length).toBeGreaterThan(0); // this process's own
  });

  it('each measure an issue sets a target for is judged at its median, and the summary names what missed', async () => {
    const { judge, formatSeries } = await import('../harness/targets.js');
    const s = judge([
      { name: 'uffd 4 KiB / (C TCP + C handler)', values: [1.1, 1.2, 1.3] },
      { name: 'uffd 1 MiB / transport 1 MiB', values: [0.4, 0.45, 0.5] },
      { name: 'sigsegv 1 MiB / transport 1 MiB', values: [0.7, 0.8, 0.9] },
      { name: 'uffd 1 MiB ahead:2 / transport 1 MiB', values: [0.7, 0.75, 0.78] },
      { name: 'sigsegv adaptive @10ms (MiB/s)', values: [900, 1000, 1100] },
      { name: 'sigsegv criu @25ms (MiB/s)', values: [40, 40, 40] }, // not a pipelined policy: no target
      { name: 'C TCP 4 KiB p50 (us)', values: [60, 70, 80] },
      { name: 'server growth, unread 100 x 16 MiB READs @1ms (MiB)', values: [48, 48, 48] },
      { name: 'nbdinfo answered with 1100 idle connections open (1 = yes)', values: [], skipped: 'nbdinfo not installed' },
      // The composed floor decomposes the 4 KiB target: no target of its own.
      { name: 'C composed floor uffd / (C TCP + C handler)', values: [1.3, 1.3, 1.3] },
      { name: 'uffd 4 KiB / C composed floor', values: [1.3, 1.3, 1.3] },
      // So does the C stream the 1 MiB ahead:2 target.
      { name: 'C stream, 2 in flight / transport 1 MiB', values: [0.5, 0.5, 0.5] },
      { name: 'uffd 1 MiB ahead:2 / C stream, 2 in flight', values: [0.5, 0.5, 0.5] },
      { name: 'C stream, 2 in flight, window 2 / transport 1 MiB', values: [0.5, 0.5, 0.5] },
      { name: 'uffd 1 MiB ahead:2 / C stream, 2 in flight, window 2', values: [0.5, 0.5, 0.5] },
      { name: "uffd 1 MiB ahead:2 client CPU per MiB / C stream, 2 in flight, window 2's", values: [1.3, 1.3, 1.3] },
    ]);
    const none = [undefined, undefined, undefined, undefined, undefined, undefined, undefined];
    expect(s.map((r) => r.target?.met)).toEqual([true, false, true, false, true, undefined, undefined, true, undefined, ...none]);
    // q1..q3 of [1.1, 1.2, 1.3] is 1.2..1.3: on both sides of 1.25.
    expect(s.map((r) => r.target?.spans)).toEqual([true, false, false, false, false, undefined, undefined, false, undefined, ...none]);
    expect(s[0].target).toMatchObject({ op: '<=', value: 1.25 });
    expect(s[3].target).toMatchObject({ op: '>=', value: 0.8 });
    expect(s[7].target).toMatchObject({ op: '<=', value: 128 });
    const text = formatSeries(s, 'see names');
    expect(text).toMatch(/uffd 1 MiB \/ transport 1 MiB .* ≥ 0\.7: MISSED$/m);
    expect(text).toMatch(/uffd 4 KiB \/ \(C TCP \+ C handler\) .* ≤ 1\.25: met \(q1\.\.q3 spans it\)$/m);
    expect(text).toMatch(/sigsegv adaptive @10ms \(MiB\/s\) .* ≥ 1000: met$/m);
    expect(text).toMatch(/^nbdinfo answered with 1100 idle connections open \(1 = yes\) +skipped: nbdinfo not installed$/m);
    expect(text.trim().split('\n').at(-1)).toBe(
      'targets at the median: 4 of 6 met; missed: uffd 1 MiB / transport 1 MiB; uffd 1 MiB ahead:2 / transport 1 MiB (1 with q1..q3 spanning the target)',
    );
  });

  it('--out writes one CSV row per measure: its rounds, median, spread, target, verdict, command and commit', async () => {
    const { judge, seriesCsv } = await import('../harness/targets.js');
    const csv = seriesCsv(
      judge([
        { name: 'sigsegv 4 KiB / (C TCP + C handler)', values: [1.3, 1.1, 1.2] },
        { name: 'nbdinfo answered with 1100 idle connections open (1 = yes)', values: [], skipped: 'nbdinfo not installed' },
      ]),
      { command: 'faultlab targets remote --rounds 3', commit: 'abc123', date: '2026-12-03T00:00:00.000Z' },
    );
    const rows = csv.trim().split('\n');
    expect(rows[0]).toBe('measure,n,median,q1,q3,min,max,target_op,target,met,spans,skipped,values,command,commit,date');
    expect(rows[1]).toBe(
      'sigsegv 4 KiB / (C TCP + C handler),3,1.2,1.2,1.3,1.1,1.3,<=,1.25,true,true,,1.3;1.1;1.2,faultlab targets remote --rounds 3,abc123,2026-12-03T00:00:00.000Z',
    );
    expect(rows[2]).toMatch(/^nbdinfo answered with 1100 idle connections open \(1 = yes\),0,,,,,,,,,,nbdinfo not installed,,/);
  });

  it('targets --out with no file name is refused with one line', () => {
    const r = faultlab(['targets', 'floors', '--out', '']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toMatch(/^faultlab: --out needs a file name$/);
  });

  it('targets --stream-region: remote only, a whole number of MiB from 1 MiB, else one line', () => {
    for (const [args, why] of [
      [['targets', 'floors', '--stream-region', '1GiB'], /^faultlab: --stream-region is for `targets remote`$/],
      [['targets', 'remote', '--stream-region', '0'], /^faultlab: --stream-region must be a whole number of MiB, at least 1MiB/],
      [['targets', 'remote', '--stream-region', '1536KiB'], /^faultlab: --stream-region must be a whole number of MiB/],
    ] as const) {
      const r = faultlab([...args]);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr.trim()).toMatch(why);
    }
  });
});
