// The paper's sections for issues 18-20 (analysis/study-sections.ts):
// latency-methods, handler-process, resident-limit and streaming-migration,
// fed hand-made rows (test data, not measurements). Each table must show the
// cell's n, its median and bootstrap interval as analysis/stats.ts computes
// them, and each section without its matrix's runs the one line naming it.
import { describe, expect, it } from 'vitest';
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
    for (const name of ['latency-methods', 'handler-process', 'resident-limit', 'streaming-migration']) expect(SECTIONS[name]).toBeTypeOf('function');
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
