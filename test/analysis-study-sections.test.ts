// The paper's sections for issues 18-20 (analysis/study-sections.ts):
// latency-methods, handler-process, resident-limit and streaming-migration,
// fed hand-made rows (test data, not measurements). Each table must show the
// cell's n, its median and bootstrap interval as analysis/stats.ts computes
// them, and each section without its matrix's runs the one line naming it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { claimsSection } from '../analysis/claims-section.js';
import { designSpaceSection } from '../analysis/design-space-section.js';
import type { RunEnv } from '../analysis/env.js';
import { formatDuration, reproduceSection } from '../analysis/reproduce-section.js';
import { loadStudyEnv, type StudyEnv } from '../analysis/study-env.js';
import { setupCostSection } from '../analysis/setup-cost-section.js';
import { buildFigures } from '../analysis/figures/index.js';
import { formatInterval, formatMibps, formatNs, formatRatio } from '../analysis/format.js';
import { PUSH_REQUIRED_COLUMNS } from '../analysis/push.js';
import { REQUIRED_COLUMNS, rowsFromCsv, type RunRow } from '../analysis/runs.js';
import type { SectionInput } from '../analysis/section-input.js';
import { SECTIONS } from '../analysis/paper-sections.js';
import { bootstrapMedian, bootstrapRatio } from '../analysis/stats.js';
import { handlerSection, latencyMethodsSection, migrationSection, missingRunLine, residentSection } from '../analysis/study-sections.js';
import { loadThesisReference } from '../analysis/thesis.js';

const thesis = loadThesisReference();
const input = (rows: RunRow[], matrix?: string): SectionInput => ({
  rows,
  env: {},
  thesis,
  runId: 'x',
  runs: [...new Set(rows.map((r) => r.runId))].map((id) => ({ id, env: matrix ? { matrix } : {} })),
  figures: [],
  skippedFigures: [],
});

/** Rows from made-up records; columns are the union of the records' keys. */
function csvRows(records: Record<string, string | number>[]): RunRow[] {
  const empty = Object.fromEntries([...REQUIRED_COLUMNS, ...PUSH_REQUIRED_COLUMNS].map((c) => [c, '']));
  const base = {
    ...empty,
    run_id: 'r1',
    status: 'ok',
    repetition: 0,
    cpus: 'same',
    chunk_bytes: 4096,
    rtt_ms: 0,
    source: 'remote',
    verified: 'true',
    message: '',
  };
  const all = records.map((r, i) => ({ ...base, repetition: i, ...r }));
  const cols = [...new Set(all.flatMap((r) => Object.keys(r)))];
  return rowsFromCsv([cols.join(','), ...all.map((r) => cols.map((c) => (r as Record<string, unknown>)[c] ?? '').join(','))].join('\n') + '\n');
}

/** The cells of the first table line whose leading cells are `lead`. */
function tableRow(md: string, lead: (string | number)[]): string[] {
  const prefix = `| ${lead.join(' | ')} |`;
  const line = md.split('\n').find((l) => l.startsWith(prefix));
  expect(line, `a table line starting ${prefix}`).toBeDefined();
  return line!
    .slice(2, -2)
    .split(' | ')
    .map((c) => c.trim());
}

const iv = (xs: number[], fmt: (v: number | null) => string) => formatInterval(bootstrapMedian(xs), fmt);

describe('latency-methods section', () => {
  const server = [2.1e6, 2.2e6, 2.4e6, 2.15e6, 2.3e6];
  const nbdkit = [2.5e6, 2.6e6, 2.7e6, 2.55e6, 3.0e6];
  const thr = { server: [10, 11, 12], nbdkit: [8, 9, 9.5] };
  const rows = csvRows([
    ...server.map((v) => ({ scenario: 'first-chunk', strategy: 'uffd', latency: 'server-delay', rtt_ms: 2, first_access_ns: v })),
    ...nbdkit.map((v) => ({ scenario: 'first-chunk', strategy: 'uffd', latency: 'nbdkit-delay', rtt_ms: 2, first_access_ns: v })),
    ...thr.server.map((v) => ({ scenario: 'read-seq', strategy: 'sigsegv', latency: 'server-delay', rtt_ms: 2, throughput_mibps: v })),
    ...thr.nbdkit.map((v) => ({ scenario: 'read-seq', strategy: 'sigsegv', latency: 'nbdkit-delay', rtt_ms: 2, throughput_mibps: v })),
    { scenario: 'first-chunk', strategy: 'uffd', latency: 'nbdkit-delay', rtt_ms: 2, first_access_ns: 1, status: 'failed' },
  ]);

  it('shows n, the median with its interval and the nbdkit/server ratio per cell; failed rows count nowhere', () => {
    const md = latencyMethodsSection(input(rows, 'latency-methods'));
    expect(tableRow(md, ['uffd', 2, 'server-delay'])).toEqual(['uffd', '2', 'server-delay', '5', iv(server, formatNs), '–']);
    expect(tableRow(md, ['uffd', 2, 'nbdkit-delay'])).toEqual([
      'uffd',
      '2',
      'nbdkit-delay',
      '5',
      iv(nbdkit, formatNs),
      formatInterval(bootstrapRatio(nbdkit, server), formatRatio),
    ]);
    const seq = tableRow(md, ['sigsegv', '4 KiB', 2, 'nbdkit-delay']);
    expect(seq[4]).toBe('3');
    expect(seq[5]).toBe(iv(thr.nbdkit, formatMibps));
    expect(seq[7]).toBe(formatInterval(bootstrapRatio(thr.nbdkit, thr.server), formatRatio));
    expect(md).toContain('Figure `latency-methods`: not drawn');
  });

  it('says which matrix to run without nbdkit-delay rows', () => {
    const only = rows.filter((r) => r.latency === 'server-delay');
    expect(latencyMethodsSection(input(only))).toBe(missingRunLine('latency-methods'));
    expect(missingRunLine('latency-methods')).toContain('faultlab run --matrix latency-methods');
    expect(missingRunLine('latency-methods').split('\n')).toHaveLength(1);
  });
});

describe('handler-process section', () => {
  const thread = [30e3, 31e3, 29e3, 33e3];
  const proc = [60e3, 62e3, 65e3, 61e3];
  const rows = csvRows([
    ...thread.map((v) => ({ scenario: 'first-chunk', strategy: 'uffd', source: 'local', handler: 'thread', first_access_ns: v })),
    ...proc.map((v) => ({ scenario: 'first-chunk', strategy: 'uffd', source: 'local', handler: 'process', first_access_ns: v })),
    ...thread.map((v) => ({ scenario: 'read-seq', strategy: 'uffd', handler: 'thread', fault_ns_p50: v / 3 })),
  ]);

  it('puts thread and process side by side with n, intervals and the process/thread ratio', () => {
    const md = handlerSection(input(rows, 'handler'));
    expect(tableRow(md, ['first-chunk latency (first access)', 'local', 'same'])).toEqual([
      'first-chunk latency (first access)',
      'local',
      'same',
      '4/4',
      iv(thread, formatNs),
      iv(proc, formatNs),
      formatInterval(bootstrapRatio(proc, thread), formatRatio),
    ]);
    // A cell with only one handler gets no ratio.
    const seq = tableRow(md, ['per-fault cost (read-seq, fault p50)', 'remote, RTT 0 ms']);
    expect(seq.slice(3)).toEqual([
      '4/0',
      iv(
        thread.map((v) => v / 3),
        formatNs,
      ),
      '–',
      '–',
    ]);
  });

  it('says which matrix to run without process rows', () => {
    expect(handlerSection(input(rows.filter((r) => r.designSpace?.handler !== 'process')))).toBe(missingRunLine('handler'));
  });
});

describe('resident-limit section', () => {
  const lim = (mib: number) => mib * 2 ** 20;
  const sweep = (limit: number, evict: string, thr: number[]) =>
    thr.map((t, i) => ({
      run_id: 'res',
      scenario: 'read-zipf',
      strategy: 'uffd',
      region_bytes: lim(256),
      resident_limit: lim(limit),
      evict,
      throughput_mibps: t,
      faults: 40 + i,
      chunks_touched: 100,
      evictions: 20 + i,
      refetches: 5,
      writebacks: 0,
    }));
  const big = [50, 55, 52];
  const base = [200, 210, 190];
  const rows = csvRows([
    ...sweep(16, 'fifo', [100, 110, 120]),
    ...sweep(64, 'clock', [300, 310]),
    ...big.map((t) => ({
      run_id: 'res',
      scenario: 'read-seq',
      strategy: 'sigsegv',
      region_bytes: lim(32768),
      chunk_bytes: 2 ** 20,
      resident_limit: lim(1024),
      evict: 'fifo',
      throughput_mibps: t,
      evictions: 31744,
    })),
    ...base.map((t) => ({ run_id: 'res', scenario: 'read-seq', strategy: 'sigsegv', region_bytes: lim(1024), chunk_bytes: 2 ** 20, throughput_mibps: t })),
  ]);

  it('shows throughput and hit rate per policy and limit, and the large read against the unlimited one', () => {
    const md = residentSection(input(rows, 'resident'));
    const fifo = tableRow(md, ['read-zipf', 'uffd', 'fifo', '256 MiB', '16 MiB']);
    expect(fifo[5]).toBe('3');
    expect(fifo[6]).toBe(iv([100, 110, 120], formatMibps));
    expect(fifo[7]).toBe(iv([0.6, 0.59, 0.58], (v) => String(v === null ? '–' : Number(v.toPrecision(3)))));
    expect(fifo.slice(8)).toEqual(['21', '5', '0']);
    expect(tableRow(md, ['read-zipf', 'uffd', 'clock', '256 MiB', '64 MiB'])[5]).toBe('2');
    const pair = tableRow(md, ['sigsegv', '32 GiB, 1 GiB']);
    expect(pair.slice(2)).toEqual([
      '3',
      iv(big, formatMibps),
      '31,744',
      '1 GiB',
      '3',
      iv(base, formatMibps),
      formatInterval(bootstrapRatio(big, base), formatRatio),
    ]);
  });

  it('says which matrix to run without rows that have a resident limit', () => {
    expect(residentSection(input(rows.filter((r) => r.designSpace?.residentLimit == null)))).toBe(missingRunLine('resident'));
  });
});

describe('streaming-migration section', () => {
  const down = [20e6, 25e6, 400e6];
  const total = [1e9, 1.2e9, 1.1e9];
  const rows = csvRows(
    down.map((d, i) => ({
      run_id: 'mig',
      scenario: 'migrate',
      strategy: 'uffd',
      tracker: 'uffd-wp',
      pattern: 'hot',
      rtt_ms: 5,
      region_bytes: 64 * 2 ** 20,
      migrate_mode: 'postcopy',
      dest_prefetch: 'background',
      stop_reason: 'postcopy',
      migration_ns: total[i],
      downtime_ns: d,
      precopy_rounds: 0,
    })),
  );

  it('shows migration time and downtime with intervals per mode, pull strategy and RTT, against the downtime limit', () => {
    const md = migrationSection(input(rows, 'migrate'));
    const line = tableRow(md, ['postcopy', 'uffd (remote)', 'background', 5]);
    expect(line.slice(4)).toEqual(['64 MiB', '3', iv(total, formatNs), iv(down, formatNs), '2/3, interval straddles', '0', '3/3']);
  });

  it('leaves the push matrix’s serial-push migrate rows to the push section', () => {
    const old = csvRows([{ run_id: 'push', scenario: 'migrate', strategy: 'uffd', tracker: 'uffd-wp', pattern: 'hot', migration_ns: 1e9, downtime_ns: 1e7 }]);
    expect(migrationSection(input(old, 'push'))).toBe(missingRunLine('migrate'));
  });
});

describe('registration', () => {
  it('every new section is a marker the paper can fill', () => {
    for (const name of ['latency-methods', 'handler-process', 'resident-limit', 'streaming-migration', 'claims', 'design-space', 'reproduce', 'setup-cost'])
      expect(SECTIONS[name]).toBeTypeOf('function');
  });
});

describe('push section beside the migrate matrix', () => {
  it('leaves the migrate matrix’s rows to streaming-migration', () => {
    const rows = csvRows([
      {
        run_id: 'mig',
        scenario: 'migrate',
        strategy: 'uffd',
        tracker: 'uffd-wp',
        pattern: 'hot',
        rtt_ms: 25,
        migrate_mode: 'postcopy',
        migration_ns: 1e9,
        downtime_ns: 1e7,
      },
    ]);
    const i = { ...input(rows), runs: [{ id: 'mig', env: { matrix: 'migrate' } }] };
    expect(SECTIONS.push(i)).toContain('No write-track or migrate rows');
    expect(SECTIONS['streaming-migration'](i)).toContain('| postcopy | uffd (remote) | none | 25 |');
  });
});

describe('thesis tables beside a latency-methods run', () => {
  it('leave its rows (both emulations) to the latency-methods section', () => {
    const rows = csvRows([
      { run_id: 'lm', scenario: 'first-chunk', strategy: 'uffd', latency: 'server-delay', rtt_ms: 2, first_access_ns: 2e6 },
      { run_id: 'lm', scenario: 'first-chunk', strategy: 'uffd', latency: 'nbdkit-delay', rtt_ms: 2, first_access_ns: 3e6 },
      { run_id: 'th', scenario: 'first-chunk', strategy: 'sigsegv', latency: 'server-delay', rtt_ms: 0, first_access_ns: 1e5 },
    ]);
    const md = SECTIONS['results-summary'](input(rows));
    expect(md).toContain('| first-chunk | sigsegv (remote) | 0 |');
    expect(md).not.toContain('uffd (remote)');
  });
});

// ---- sections the prose points at instead of quoting numbers (claims, design-space, reproduce) ----

describe('reproduce section', () => {
  const study: StudyEnv = {
    study: true,
    commit: 'abc1234def56',
    quick: false,
    allow_dirty: false,
    started: '2026-12-03T06:00:00.000Z',
    finished: '2026-12-03T07:25:30.000Z',
    complete: true,
    seconds: 5130,
    seconds_per_matrix: { thesis: 600, push: 130, paper: 40 },
    failed_cells: 3,
    matrices: [
      { name: 'thesis', matrix: 'thesis', cells: 127, paper: true },
      { name: 'push', matrix: 'push', cells: 34, paper: true },
    ],
    argv: ['study', '--out', 'results/study-a'],
    cpus: 2,
  };
  const runs = (s: StudyEnv | null, also: { id: string; env: RunEnv | null; study?: StudyEnv | null }[] = []) => ({
    ...input([]),
    runs: [
      { id: 'study-a/thesis', env: { matrix: 'thesis', finished: '2026-12-03T06:10:00.000Z' }, study: s },
      { id: 'study-a/push', env: { matrix: 'push', finished: '2026-12-03T06:12:10.000Z' }, study: s },
      ...also,
    ],
  });

  it("states the command, the commit and the study's duration from its env.json, and each matrix's time", () => {
    const md = reproduceSection(runs(study));
    expect(md).toContain('| command | `npx faultlab study --out results/study-a` |');
    expect(md).toContain('| commit | abc1234def56 |');
    expect(md).toContain('| started / finished | 2026-12-03T06:00:00.000Z / 2026-12-03T07:25:30.000Z |');
    expect(md).toContain('| time taken | 1 h 25 min of running; 1 h 25 min from start to finish |');
    expect(md).toContain('| failed cells | 3 |');
    expect(tableRow(md, ['thesis', 'thesis'])).toEqual(['thesis', 'thesis', '127', 'the matrix’s own', '10 min 0 s', 'yes']);
    expect(tableRow(md, ['push', 'push'])[4]).toBe('2 min 10 s');
    expect(md).not.toContain('(figures and paper)'); // known only after the study fills its paper: the two fills would differ
    expect(md).not.toContain('not from one');
  });

  it('says --quick and --allow-dirty where the study used them, and rebuilds the command without argv', () => {
    const md = reproduceSection(runs({ ...study, argv: undefined, quick: true, allow_dirty: true }));
    expect(md).toContain('| command | `npx faultlab study --quick --allow-dirty` |');
    expect(md).toContain('--allow-dirty: the tree had uncommitted changes');
    expect(md).toContain('the smoke test');
  });

  it('claims no duration for a study whose env.json records no finish, and says how far its matrices got', () => {
    const md = reproduceSection(runs({ ...study, finished: null, complete: false, seconds: undefined }));
    expect(md).toContain("**not recorded: the study's env.json records no finish**");
    expect(md).toContain('its last matrix here ended 12 min 10 s after the start');
    expect(md).not.toContain('1 h 25 min');
  });

  it('says so when the runs were made one by one, with each run’s commit and time', () => {
    const md = reproduceSection({
      ...input([]),
      runs: [
        { id: 'thesis-x', env: { matrix: 'thesis', commit: 'aaa', started: '2026-11-27T00:00:00Z', finished: '2026-11-27T00:09:22Z' } },
        { id: 'push-x', env: { matrix: 'push', commit: 'bbb-dirty' } },
      ],
    });
    expect(md).toContain('These results are not from one `faultlab study`: the 2 runs were made one by one');
    expect(tableRow(md, ['thesis-x'])).toEqual(['thesis-x', 'thesis', 'aaa', '2026-11-27T00:00:00Z / 2026-11-27T00:09:22Z', '9 min 22 s']);
    expect(tableRow(md, ['push-x'])[4]).toBe('not recorded');
    expect(md).not.toContain('| command |');
  });

  it('says so when a study is combined with a run made on its own', () => {
    const md = reproduceSection(runs(study, [{ id: 'extra', env: { matrix: 'thesis', commit: 'ccc' }, study: null }]));
    expect(md).toContain('not from one `faultlab study`: one study and 1 run made one by one');
    expect(md).not.toContain('| command |');
  });

  it('formats durations', () => {
    expect([formatDuration(42), formatDuration(605), formatDuration(5400), formatDuration(NaN)]).toEqual(['42 s', '10 min 5 s', '1 h 30 min', '–']);
  });
});

describe('loadStudyEnv', () => {
  it("reads a study's env.json from the run's parent folder, and nothing else", () => {
    const root = mkdtempSync(join(tmpdir(), 'faultlab-study-env-'));
    try {
      mkdirSync(join(root, 'study', 'thesis'), { recursive: true });
      writeFileSync(join(root, 'study', 'env.json'), JSON.stringify({ study: true, commit: 'abc' }));
      expect(loadStudyEnv(join(root, 'study', 'thesis'))?.commit).toBe('abc');
      mkdirSync(join(root, 'loose', 'run'), { recursive: true });
      expect(loadStudyEnv(join(root, 'loose', 'run'))).toBeNull();
      writeFileSync(join(root, 'loose', 'env.json'), JSON.stringify({ run_id: 'x', matrix: 'thesis' }));
      expect(loadStudyEnv(join(root, 'loose', 'run'))).toBeNull();
      writeFileSync(join(root, 'loose', 'env.json'), '{ not json');
      expect(() => loadStudyEnv(join(root, 'loose', 'run'))).toThrow(/env\.json: not valid JSON/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('claims section', () => {
  const faults = (uffd: number[], sigsegv: number[]) =>
    csvRows([
      ...uffd.map((v) => ({ scenario: 'read-seq', strategy: 'uffd', source: 'local', region_bytes: 67108864, fault_ns_p50: v })),
      ...sigsegv.map((v) => ({ scenario: 'read-seq', strategy: 'sigsegv', source: 'local', region_bytes: 67108864, fault_ns_p50: v })),
    ]);
  const claims = (rows: RunRow[]) => claimsSection(input(rows), rows);
  const verdict = (md: string, claim: string) => tableRow(md, [claim, '**verdict**'])[4];

  it('claim 1: the verdict follows the interval of uffd/sigsegv, not the medians alone', () => {
    const u = [14e3, 13.8e3, 14.2e3, 13.9e3, 14.1e3];
    const s = [8.2e3, 8.3e3, 8.1e3, 8.4e3, 8.25e3];
    expect(verdict(claims(faults(u, s)), '1: SIGSEGV is inefficient')).toContain('a SIGSEGV fault costs less');
    expect(tableRow(claims(faults(u, s)), ['1: SIGSEGV is inefficient', 'fault p50, uffd / sigsegv (local source, 0 ms)'])[2]).toBe(
      `${formatInterval(bootstrapRatio(u, s), formatRatio)} (5/5)`,
    );
    expect(verdict(claims(faults(s, u)), '1: SIGSEGV is inefficient')).toContain('partly supported');
    // Medians differ, intervals overlap: undecided.
    expect(verdict(claims(faults([9e3, 10e3, 11e3, 12e3, 13e3], [8e3, 9.5e3, 10.5e3, 12.5e3, 14e3])), '1: SIGSEGV is inefficient')).toContain('not shown');
  });

  it('claim 2: a tracker that missed a chunk in one repetition turns the verdict', () => {
    const wt = (exact: string[]) =>
      csvRows(exact.map((e) => ({ run_id: 'p', scenario: 'write-track', strategy: 'uffd-wp', tracker: 'uffd-wp', pattern: 'seq', tracker_exact: e })));
    const i = (rows: RunRow[]) => ({ ...input(rows), runs: [{ id: 'p', env: { matrix: 'push' } }] });
    expect(verdict(claimsSection(i(wt(['true', 'true'])), []), '2: userfaultfd cannot track changes')).toContain('does not hold');
    const md = claimsSection(i(wt(['true', 'false'])), []);
    expect(verdict(md, '2: userfaultfd cannot track changes')).toContain('not decided');
    expect(md).toContain('| 1/2 |');
  });

  it('claim 4: a pipelined read is judged against the NBD mounts’ lower bound by its whole interval', () => {
    const seq = (policy: string, xs: number[]) =>
      xs.map((v) => ({
        run_id: 'd',
        scenario: 'read-seq',
        strategy: 'sigsegv',
        rtt_ms: 25,
        region_bytes: 134217728,
        chunk_bytes: 1048576,
        prefetch: policy,
        throughput_mibps: v,
      }));
    const i = (rows: RunRow[]) => ({ ...input(rows), runs: [{ id: 'd', env: { matrix: 'design-space' } }] });
    const line = (xs: number[]) =>
      tableRow(claimsSection(i(csvRows([...seq('background', xs), ...seq('none', [37, 38, 37])])), []), [
        '4: unusable at high RTT',
        'sigsegv, prefetch=background, sequential read at 25 ms',
      ])[4];
    expect(line([1100, 1150, 1120, 1090, 1130])).toContain('above that bound over the whole interval');
    expect(line([300, 800, 450, 700, 520])).toBe('straddles that bound');
    expect(line([300, 310, 290, 305, 295])).toContain('below that bound');
  });
});

describe('design-space section: lazy or eager', () => {
  it('lists a share as faster or slower only where the interval of lazy/eager excludes 1', () => {
    const cell = (strategy: string, share: number, xs: number[]) =>
      xs.map((v) => ({
        run_id: 'd',
        scenario: 'read-sparse',
        strategy,
        rtt_ms: 10,
        region_bytes: 16777216,
        chunk_bytes: 65536,
        touch_fraction: share,
        total_ns: v,
      }));
    const rows = csvRows([
      ...cell('eager', 0.02, [180e6, 185e6, 190e6]),
      ...cell('eager', 0.5, [180e6, 185e6, 190e6]),
      ...cell('eager', 0.1, [180e6, 185e6, 190e6]),
      ...cell('uffd', 0.02, [50e6, 52e6, 51e6]),
      ...cell('uffd', 0.1, [150e6, 200e6, 250e6]),
      ...cell('uffd', 0.5, [1.3e9, 1.35e9, 1.4e9]),
    ]);
    const md = designSpaceSection({ ...input(rows), runs: [{ id: 'd', env: { matrix: 'design-space' } }] });
    expect(tableRow(md, [10, 'uffd, no prefetch', '2 %'])).toEqual(['10', 'uffd, no prefetch', '2 %', '50 %', '10 %', '3']);
    expect(tableRow(md, [10, '2 %'])[2]).toBe(formatInterval(bootstrapMedian([180e6, 185e6, 190e6]), formatNs));
  });

  it('says which matrices fill it when their rows are absent', () => {
    expect(designSpaceSection(input([]))).toContain('`faultlab run --matrix design-space`');
  });
});

describe('setup-cost section', () => {
  it('adds each repetition’s set-up to its first access, and spreads it over the chunks of a sequential read', () => {
    const setup = [2e6, 2.2e6, 1.9e6];
    const first = [40e3, 45e3, 42e3];
    const rows = csvRows([
      ...setup.map((s, i) => ({
        scenario: 'first-chunk',
        strategy: 'sigsegv',
        source: 'local',
        region_bytes: 67108864,
        setup_ns: s,
        first_access_ns: first[i],
      })),
      ...setup.map((s) => ({ scenario: 'read-seq', strategy: 'sigsegv', source: 'local', region_bytes: 4194304, setup_ns: s, fault_ns_p50: 8e3 })),
      { scenario: 'first-chunk', strategy: 'uffd', source: 'local', region_bytes: 67108864, first_access_ns: 30e3 },
    ]);
    const md = setupCostSection(rows);
    expect(tableRow(md, ['sigsegv (local)', '64 MiB'])).toEqual([
      'sigsegv (local)',
      '64 MiB',
      '3',
      iv(setup, formatNs),
      iv(first, formatNs),
      iv(
        setup.map((s, i) => s + first[i]),
        formatNs,
      ),
    ]);
    // 4 MiB in 4 KiB chunks: 1024 faults share the set-up.
    expect(tableRow(md, ['sigsegv (local)', '4 MiB, 4 KiB'])[5]).toBe(
      iv(
        setup.map((s) => 8e3 + s / 1024),
        formatNs,
      ),
    );
    // A row without setup_ns (an older run) is left out rather than counted as free.
    expect(md).not.toContain('uffd (local)');
    expect(setupCostSection(csvRows([{ scenario: 'first-chunk', strategy: 'uffd', first_access_ns: 1 }]))).toContain('No set-up times');
  });
});

describe('claims section: claim 1 with the set-up counted', () => {
  it('spreads each repetition’s set-up over its chunks and says when that closes the gap', () => {
    // 4 MiB in 4 KiB chunks = 1024 chunks; sigsegv’s 4.75 ms set-up adds about 4.6 µs per chunk.
    const read = (strategy: string, faults: number[], setup: number) =>
      faults.map((v) => ({ scenario: 'read-seq', strategy, source: 'local', region_bytes: 4194304, fault_ns_p50: v, setup_ns: setup }));
    const u = [10.5e3, 10.7e3, 10.9e3, 10.6e3, 10.8e3];
    const s = [6.1e3, 6.2e3, 6.15e3, 6.3e3, 6.05e3];
    const rows = csvRows([...read('uffd', u, 2e5), ...read('sigsegv', s, 4.75e6)]);
    const md = claimsSection(input(rows), rows);
    const row = tableRow(md, [
      '1: SIGSEGV is inefficient',
      'fault p50 + set-up (setup_ns) spread over the region’s chunks, uffd / sigsegv (local source, 0 ms)',
    ]);
    expect(row[2]).toBe(
      `${formatInterval(
        bootstrapRatio(
          u.map((x) => x + 2e5 / 1024),
          s.map((x) => x + 4.75e6 / 1024),
        ),
        formatRatio,
      )} (5/5)`,
    );
    expect(row[4]).toContain('no difference resolved');
    expect(tableRow(md, ['1: SIGSEGV is inefficient', '**verdict**'])[4]).toContain('with each one’s set-up counted, no difference is resolved');
    // A small set-up leaves sigsegv the cheaper either way.
    const cheap = csvRows([...read('uffd', u, 2e5), ...read('sigsegv', s, 2e5)]);
    expect(tableRow(claimsSection(input(cheap), cheap), ['1: SIGSEGV is inefficient', '**verdict**'])[4]).toContain('with its set-up counted too');
  });
});

describe('thread-scaling figure beside the VMA-limit cells', () => {
  it('draws a sweep’s own region only: one-thread cells of other regions are not its points', () => {
    const cell = (threads: number, region: number, xs: number[], span = 1) =>
      xs.map((v) => ({
        run_id: 'd',
        scenario: 'read-random',
        strategy: 'sigsegv',
        source: 'local',
        cpus: 'free',
        region_bytes: region,
        app_threads: threads,
        vma_span: span,
        throughput_mibps: v,
      }));
    const rows = csvRows([
      ...cell(1, 64 << 20, [300, 310, 305]),
      ...cell(2, 64 << 20, [480, 490, 485]),
      ...cell(4, 64 << 20, [470, 480, 490]),
      // The VMA-limit group: sigsegv, local, read-random, 4 KiB, one thread, larger regions, spans.
      ...cell(1, 1 << 30, [1300, 1350, 1400], 8),
      ...cell(1, 256 << 20, [300, 320, 600, 610, 620], 1),
    ]);
    const fig = buildFigures(rows).figures.find((f) => f.name === 'thread-scaling')!;
    const pts = (fig.spec as unknown as { data: { values: { threads: number; median: number; reps: number }[] } }).data.values;
    expect(pts.map((p) => [p.threads, p.median, p.reps])).toEqual([
      [1, 305, 3],
      [2, 485, 3],
      [4, 480, 3],
    ]);
  });
});
