// analysis/: the statistics behind every table and figure (bootstrap intervals
// of medians and of ratios of medians), the same-machine ratios beside the
// thesis's, run-to-run spread, and what the figures make of them. Runs on the
// hand-made fixture in test/fixtures and on rows made up here (test data, not
// measurements).
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { thesisVsStudy } from '../analysis/comparison.js';
import { decompose } from '../analysis/decomposition.js';
import { captionWithN, repsIn } from '../analysis/figures/caption.js';
import { buildFigures, FIGURES } from '../analysis/figures/index.js';
import { formatInterval, formatNs, formatRatio } from '../analysis/format.js';
import { floorsSection, resultsSummarySection, runSpreadSection, thesisVsStudySection } from '../analysis/paper-sections.js';
import { RATIOS, sameMachineRatios, sideValues } from '../analysis/ratios.js';
import { loadRuns, REQUIRED_COLUMNS, rowsFromCsv, type RunRow } from '../analysis/runs.js';
import type { SectionInput } from '../analysis/section-input.js';
import { cellSpreads, runSpreadMarkdown } from '../analysis/spread.js';
import { BOOTSTRAP_RESAMPLES, bootstrapMedian, bootstrapRatio, median, rng } from '../analysis/stats.js';
import { loadThesisReference } from '../analysis/thesis.js';

const rows = loadRuns(join(import.meta.dirname, 'fixtures', 'runs.csv'));
const thesis = loadThesisReference();
const input = (rs: RunRow[], extra: Partial<SectionInput> = {}): SectionInput => ({
  rows: rs,
  env: {},
  thesis,
  runId: 'x',
  figures: [],
  skippedFigures: [],
  ...extra,
});

/** n draws from a skewed distribution (as latencies are), reproducible for a seed. */
function sample(n: number, seed = 7): number[] {
  const next = rng(seed);
  return Array.from({ length: n }, () => 100 + 50 * -Math.log(1 - next()));
}

/** Rows from made-up records; columns are the union of the records' keys. */
function csvRows(records: Record<string, string | number>[]): RunRow[] {
  const empty = Object.fromEntries(REQUIRED_COLUMNS.map((c) => [c, '']));
  const base = { ...empty, status: 'ok', repetition: 0, cpus: 'same', chunk_bytes: 4096, rtt_ms: 0, fault_ns_cdf: '', message: '' };
  const all = records.map((r) => ({ ...base, ...r }));
  const cols = [...new Set(all.flatMap((r) => Object.keys(r)))];
  return rowsFromCsv([cols.join(','), ...all.map((r) => cols.map((c) => (r as Record<string, unknown>)[c] ?? '').join(','))].join('\n') + '\n');
}

describe('bootstrap intervals', () => {
  it('the interval of a median contains the median and lies within the data', () => {
    for (const n of [2, 3, 5, 20, 100]) {
      const xs = sample(n);
      const iv = bootstrapMedian(xs);
      expect(iv.value, `n=${n}`).toBe(median(xs));
      expect(iv.lo, `n=${n}`).toBeLessThanOrEqual(iv.value);
      expect(iv.hi, `n=${n}`).toBeGreaterThanOrEqual(iv.value);
      expect(iv.lo).toBeGreaterThanOrEqual(Math.min(...xs));
      expect(iv.hi).toBeLessThanOrEqual(Math.max(...xs));
      expect(iv.n).toBe(n);
    }
  });

  it('is deterministic for a seed (so the paper regenerates byte for byte) and moves with another seed', () => {
    const xs = sample(30);
    expect(bootstrapMedian(xs)).toEqual(bootstrapMedian(xs));
    expect(bootstrapMedian([...xs].reverse())).toEqual(bootstrapMedian([...xs].reverse()));
    const seeds = [1, 2, 3, 4].map((seed) => bootstrapMedian(xs, { seed }));
    expect(new Set(seeds.map((s) => `${s.lo}/${s.hi}`)).size).toBeGreaterThan(1);
  });

  it('widens as n shrinks', () => {
    const xs = sample(400);
    const width = (n: number) => {
      const iv = bootstrapMedian(xs.slice(0, n));
      return iv.hi - iv.lo;
    };
    expect(width(10)).toBeGreaterThan(width(50));
    expect(width(50)).toBeGreaterThan(width(400));
  });

  it('a wider level gives a wider interval; one value gives no interval; none gives NaN', () => {
    const xs = sample(25);
    const w = (level: number) => {
      const iv = bootstrapMedian(xs, { level });
      return iv.hi - iv.lo;
    };
    expect(w(0.99)).toBeGreaterThan(w(0.5));
    expect(bootstrapMedian([42])).toEqual({ value: 42, lo: 42, hi: 42, n: 1 });
    expect(Number.isNaN(bootstrapMedian([]).value)).toBe(true);
  });

  it('the ratio of medians resamples each side: contains the ratio, deterministic, wider with fewer repetitions', () => {
    const num = sample(40, 1).map((x) => x * 3);
    const den = sample(40, 2);
    const r = bootstrapRatio(num, den);
    expect(r.value).toBeCloseTo(median(num) / median(den), 12);
    expect(r.lo).toBeLessThanOrEqual(r.value);
    expect(r.hi).toBeGreaterThanOrEqual(r.value);
    expect(r.lo).toBeGreaterThan(1); // 3x the scale: clearly above 1
    expect(r).toEqual(bootstrapRatio(num, den));
    expect({ n: r.n, nDen: r.nDen }).toEqual({ n: 40, nDen: 40 });
    const few = bootstrapRatio(num.slice(0, 5), den.slice(0, 5));
    expect(few.hi - few.lo).toBeGreaterThan(r.hi - r.lo);
    expect(Number.isNaN(bootstrapRatio([], den).value)).toBe(true);
  });

  it('formats a median with its interval, and without brackets when there is none', () => {
    expect(formatInterval({ value: 2410000, lo: 2380000, hi: 2450000, n: 5 }, formatNs)).toBe('2.41 ms [2.38 ms, 2.45 ms]');
    expect(formatInterval({ value: 2410000, lo: 2410000, hi: 2410000, n: 1 }, formatNs)).toBe('2.41 ms');
    expect(formatInterval(null, formatNs)).toBe('–');
  });
});

describe('tables carry intervals and n', () => {
  it('results-summary, floors: median [interval] per cell, n column, the bootstrap stated', () => {
    const summary = resultsSummarySection(input(rows));
    expect(summary).toContain(`${BOOTSTRAP_RESAMPLES} resamples`);
    expect(summary).toContain('| n |');
    // uffd (local) first chunk at 0 ms: three repetitions in the fixture -> an interval in brackets
    const fc = rows.filter((r) => r.scenario === 'first-chunk' && r.strategy === 'uffd' && r.source === 'local' && r.status === 'ok');
    const iv = bootstrapMedian(fc.map((r) => r.firstAccessNs!));
    expect(summary).toContain(formatInterval(iv, formatNs));
    expect(iv.hi).toBeGreaterThan(iv.lo);
    const floors = floorsSection(input(rows));
    expect(floors).toContain('p50 (median [95 % CI])');
    expect(floors).toContain('fault p50 / floor [95 % CI]');
  });
});

describe('same-machine ratios beside the thesis', () => {
  it("computes ours within the run and the thesis's from its own two values", () => {
    const ratios = sameMachineRatios(rows, thesis);
    const byId = new Map(ratios.map((r) => [r.def.id, r]));
    const v = (id: string) => thesis.values.find((x) => x.id === id)!.value;
    const fcDisk = byId.get('first-chunk-uffd-over-disk')!;
    expect(fcDisk.thesis).toBeCloseTo(v('first-chunk-0ms-userfaultfd') / v('first-chunk-0ms-disk'), 12);
    expect(fcDisk.thesisApproximate).toBe(true); // 58 us was read off a figure
    const uffd = sideValues(rows, RATIOS.find((r) => r.id === 'first-chunk-uffd-over-disk')!.num);
    const disk = sideValues(rows, RATIOS.find((r) => r.id === 'first-chunk-uffd-over-disk')!.den);
    expect(uffd.length).toBe(3);
    expect(fcDisk.ours!.value).toBeCloseTo(median(uffd) / median(disk), 12);
    expect(byId.get('throughput-memory-over-uffd')!.thesis).toBeCloseTo(v('throughput-0ms-memory') / v('throughput-0ms-userfaultfd'), 12);
    // The thesis had no sigsegv strategy and no floors.
    expect(byId.get('first-chunk-uffd-over-sigsegv-local')!.thesis).toBeNull();
    expect(byId.get('first-chunk-uffd-over-sigsegv-local')!.ours).not.toBeNull();
    expect(byId.get('fault-p50-uffd-over-floor')!.ours).not.toBeNull();
  });

  it('the thesis comparison shows them next to ours/thesis', () => {
    const md = thesisVsStudySection(input(rows));
    expect(md).toContain('ratio ours/thesis (across machines)');
    expect(md).toContain('same-machine ratio (0 ms RTT)');
    const fcDisk = sameMachineRatios(rows, thesis).find((r) => r.def.id === 'first-chunk-uffd-over-disk')!;
    expect(md).toContain(`| first chunk, uffd (local) / disk | ${formatInterval(fcDisk.ours, formatRatio)} | 3/3 | ${formatRatio(fcDisk.thesis)}`);
    expect(md).toContain('not measured there');
  });

  it('a thesis bound holds only when our whole interval is on its side', () => {
    const at6 = (mibps: number[]) =>
      csvRows(
        mibps.map((m, i) => ({
          strategy: 'uffd',
          scenario: 'read-seq',
          source: 'remote',
          rtt_ms: 6,
          repetition: i,
          region_bytes: 262144,
          throughput_mibps: m,
        })),
      );
    const bound = (rs: RunRow[]) => thesisVsStudy(rs, thesis).find((c) => c.id === 'throughput-6ms-userfaultfd-bound')!;
    expect(bound(at6([0.5, 0.6, 0.55])).boundHolds).toBe(true);
    expect(bound(at6([1.5, 1.6, 1.55])).boundHolds).toBe(false);
    // median 0.9 < 1, but the interval reaches above the bound
    const straddle = bound(at6([0.5, 0.8, 0.9, 1.4, 1.5]));
    expect(straddle.ourMedian).toBeLessThan(1);
    expect(straddle.boundHolds).toBe('undecided');
    expect(thesisVsStudySection(input(at6([0.5, 0.8, 0.9, 1.4, 1.5])))).toContain('our interval straddles it');
  });
});

describe('the fault decomposition is not clamped', () => {
  /** sigsegv local read-seq at fault p50s `total`, its floor at `floor`. */
  const decomp = (total: number[], floor: number[]) =>
    decompose(
      csvRows([
        ...total.map((t, i) => ({ strategy: 'sigsegv', scenario: 'read-seq', source: 'local', region_bytes: 1 << 26, repetition: i, fault_ns_p50: t })),
        ...floor.map((f, i) => ({ strategy: 'floor-sigsegv', scenario: 'floor', source: 'none', repetition: i, fault_ns_p50: f })),
      ]),
    )[0];

  it('a strategy beating its floor beyond the intervals gets negative handling, flagged', () => {
    const d = decomp([8000, 8100, 8050, 7990, 8020], [9000, 9100, 9050, 8990, 9020]);
    expect(d.handlingNs).toBeCloseTo(8020 - 9020);
    expect(d.belowFloor).toBe('clearly');
    expect(d.overFloor.hi).toBeLessThan(1);
  });

  it('within the intervals it is "within"; above the floor "no"', () => {
    expect(decomp([8000, 9500, 8900], [9000, 8500, 9100]).belowFloor).toBe('within');
    expect(decomp([12000, 12100, 11900], [9000, 9100, 8900]).belowFloor).toBe('no');
  });

  it('the figure draws no handling point for it and says so in its caption; the table marks it', () => {
    const rs = csvRows([
      ...[8000, 8100, 8050].map((t, i) => ({
        strategy: 'sigsegv',
        scenario: 'read-seq',
        source: 'local',
        region_bytes: 1 << 26,
        repetition: i,
        fault_ns_p50: t,
      })),
      ...[9000, 9100, 9050].map((f, i) => ({ strategy: 'floor-sigsegv', scenario: 'floor', source: 'none', repetition: i, fault_ns_p50: f })),
    ]);
    const fig = buildFigures(rs, { thesis }).figures.find((f) => f.name === 'fault-decomposition')!;
    expect(fig.caption).toMatch(/sigsegv \(local\) \(-1,?000 ns\) measured below its floor/);
    expect(JSON.stringify(fig.spec)).not.toContain('"part":"handling');
    expect((fig.spec as { layer: { encoding: { y?: { scale?: { type?: string } } } }[] }).layer[1].encoding.y!.scale!.type).toBe('log');
    expect(floorsSection(input(rs))).toContain('below its floor**');
  });
});

describe('run-to-run spread', () => {
  const a = rows.map((r) => ({ ...r, runId: 'run-a' }));
  // Run b: the same matrix, every value the same except uffd (local) first chunk, 3x slower.
  const slow = (r: RunRow) => r.scenario === 'first-chunk' && r.strategy === 'uffd' && r.source === 'local';
  const b = rows.map((r) => ({ ...r, runId: 'run-b', firstAccessNs: slow(r) && r.firstAccessNs !== null ? r.firstAccessNs * 3 : r.firstAccessNs }));
  const runs = [
    { id: 'run-a', matrix: 'fixture', rows: a },
    { id: 'run-b', matrix: 'fixture', rows: b },
  ];

  it('finds the cell that moved, with non-overlapping intervals, and no other', () => {
    const cells = cellSpreads(runs);
    const moved = cells.filter((c) => c.maxOverMin > 1.0001);
    expect(moved.map((c) => `${c.scenario} ${c.method} ${c.rttMs}`)).toEqual(['first-chunk uffd (local) 0']);
    expect(moved[0].maxOverMin).toBeCloseTo(3, 9);
    expect(moved[0].overlap).toBe(false);
    expect(cells.filter((c) => c.overlap === false)).toHaveLength(1);
    expect(cells.length).toBeGreaterThan(30);
  });

  it('takes any two or more runs of a matrix; one run, or a matrix given once, is named as not compared', () => {
    expect(runSpreadMarkdown(runs.slice(0, 1))).toBe(
      'No two runs of one matrix were given, so there is no run-to-run spread to show. Not compared, one run only: matrix fixture (results/run-a).',
    );
    const mixed = runSpreadMarkdown([runs[0], { ...runs[1], matrix: 'other' }]);
    expect(mixed).toMatch(/^No two runs of one matrix .* Not compared, one run only: matrix fixture \(results\/run-a\), matrix other \(results\/run-b\)\.$/);
    expect(() => runSpreadMarkdown([runs[0], { ...runs[1], id: 'run-a' }])).toThrow(/two runs are labelled run-a/);
    const three = runSpreadMarkdown([...runs, { id: 'run-c', matrix: 'fixture', rows: rows.map((r) => ({ ...r, runId: 'run-c' })) }]);
    expect(three).toContain('run-c (n)');
    expect(three).toMatch(/In 1 of the \d+ cells with two or more repetitions/);
    expect(three).not.toContain('Not compared');
    // One repetition per run: no interval, so no verdict on overlap.
    const single = (id: string, f: number) => ({
      id,
      matrix: 'm',
      rows: csvRows([{ strategy: 'floor-uffd', scenario: 'floor', source: 'none', fault_ns_p50: f }]),
    });
    const one = cellSpreads([single('x', 1000), single('y', 2000)]);
    expect(one.map((c) => [c.matrix, c.maxOverMin, c.overlap])).toEqual([['m', 2, null]]);
    expect(runSpreadMarkdown([single('x', 1000), single('y', 2000)])).toContain('0 of 0 (1 with n = 1: no interval)');
  });

  it('compares every matrix given twice, each with its own runs: a row per matrix and scenario, one label per run', () => {
    // Two studies A and B of matrices m1 and m2 (B's m2 read-seq 2x faster), and m3 in A only.
    // Every row carries one run_id, so only the runs' own rows may make their medians.
    const run = (study: string, matrix: string, scale: (scenario: string) => number) => ({
      id: `${study}/${matrix}`,
      folder: `results/${study}/${matrix}`,
      matrix,
      rows: csvRows(
        [0, 1, 2].flatMap((i) => [
          { run_id: 'same', strategy: 'memory', scenario: 'first-chunk', source: 'none', repetition: i, first_access_ns: (500 + i) * scale('first-chunk') },
          {
            run_id: 'same',
            strategy: 'uffd',
            scenario: 'read-seq',
            source: 'local',
            region_bytes: 1 << 20,
            repetition: i,
            throughput_mibps: (900 + i) * scale('read-seq'),
          },
        ]),
      ),
    });
    const one = () => 1;
    const spreadRuns = [
      run('study-A', 'm1', one),
      run('study-A', 'm2', one),
      run('study-A', 'm3', one),
      run('study-B', 'm1', one),
      run('study-B', 'm2', (sc) => (sc === 'read-seq' ? 2 : 1)),
    ];
    const cells = cellSpreads(spreadRuns);
    expect(cells.map((c) => `${c.matrix} ${c.scenario} ${formatRatio(c.maxOverMin)}`)).toEqual([
      'm1 first-chunk 1×',
      'm1 read-seq 1×',
      'm2 first-chunk 1×',
      'm2 read-seq 2×',
    ]);
    const md = runSpreadMarkdown(spreadRuns);
    expect(md).toMatch(/^Runs compared, by matrix: m1: results\/study-A\/m1, results\/study-B\/m1; m2: results\/study-A\/m2, results\/study-B\/m2; 4 cells /);
    expect(md).toContain('Not compared, one run only: matrix m3 (results/study-A/m3).');
    const tableRows = (head: string) => {
      const lines = md.split('\n');
      const at = lines.findIndex((l) => l.startsWith(head));
      expect(at, head).toBeGreaterThanOrEqual(0);
      const out: string[] = [];
      for (let i = at + 2; i < lines.length && lines[i].startsWith('|'); i++) out.push(lines[i]);
      return out;
    };
    expect(tableRows('| matrix | scenario | measure |').map((l) => l.split(' | ').slice(0, 2).join(' '))).toEqual([
      '| m1 first-chunk',
      '| m1 read-seq',
      '| m2 first-chunk',
      '| m2 read-seq',
    ]);
    // The most variable cells over every matrix: matrix column, a column per study.
    expect(md).toContain('| matrix | scenario | method | RTT (ms) | region | chunk | cpus | measure | study-A (n) | study-B (n) | largest / smallest |');
    const worst = tableRows('| matrix | scenario | method | RTT (ms) |');
    expect(worst[0]).toMatch(/^\| m2 \| read-seq \| uffd \(local\) \| .* \| 2× \|$/);
    expect(worst).toHaveLength(4);
  });

  it('the section lists within-run ratios per run with n, and the most variable cells first', () => {
    const md = runSpreadSection(input([...a, ...b], { spreadRuns: runs }));
    expect(md).toContain('| same-machine ratio (0 ms RTT) | run-a [95 % CI] (n) | run-b [95 % CI] (n) | largest / smallest |');
    expect(md).toMatch(/\| first chunk, uffd \(local\) \/ disk \| [^|]+ \(3\/3\) \| [^|]+ \(3\/3\) \| 3×/);
    const worst = md.split('\n').find((l) => l.startsWith('| fixture | first-chunk | uffd (local) |'));
    expect(worst).toBeDefined();
    // Without spreadRuns: the --in runs that share a matrix.
    const env = { matrix: 'fixture' };
    const viaRuns = runSpreadSection(
      input([...a, ...b], {
        runs: [
          { id: 'run-a', env },
          { id: 'run-b', env },
        ],
      }),
    );
    expect(viaRuns).toBe(md);
    expect(runSpreadSection(input(a, { runs: [{ id: 'run-a', env }] }))).toContain('No two runs of one matrix');
  });
});

describe('figures: spread, scales, n in captions', () => {
  const { figures } = buildFigures(rows, { thesis, runId: 'fixture' });
  const fig = (name: string) => figures.find((f) => f.name === name)!;

  it('every figure of the fixture says n in its caption, from the repetitions behind its medians', () => {
    for (const f of figures) {
      const reps = repsIn(f.spec);
      expect(reps.length, f.name).toBeGreaterThan(0);
      expect(f.caption, f.name).toMatch(/n = \d+(–\d+)? repetitions per plotted median/);
    }
    // The fixture: 3 first-chunk repetitions at 0 ms, 2 at the other RTTs.
    expect(fig('first-chunk-vs-rtt').caption).toContain('n = 2–3 repetitions');
    expect(captionWithN('c.', { usermeta: { intervals: false }, data: { values: [{ reps: 4 }] } } as never)).toBe('c. n = 4 repetitions per plotted median.');
  });

  it('bands and error bars are the bootstrap interval, not min..max', () => {
    for (const name of ['first-chunk-vs-rtt', 'throughput-vs-rtt', 'throughput-0ms', 'first-chunk-0ms', 'fault-cdf', 'fault-decomposition']) {
      const json = JSON.stringify(fig(name).spec);
      expect(json, name).toMatch(/"field":"lo"/);
      expect(json, name).toMatch(/"field":"hi"/);
      expect(json, name).not.toMatch(/"y":\{"field":"min"/);
    }
  });

  it('first-chunk-vs-rtt has a log y axis (eager is decades above the lazy methods)', () => {
    const spec = fig('first-chunk-vs-rtt').spec as { layer: { encoding: { y: { scale?: { type?: string } } } }[] };
    expect(spec.layer.every((l) => l.encoding.y.scale?.type === 'log')).toBe(true);
  });

  it('fault-cdf falls back to the 21 quantiles and says so; with fault_ns_cdf_fine it draws 101', () => {
    const coarse = fig('fault-cdf');
    expect(coarse.caption).toContain('no fault_ns_cdf_fine');
    const lines = (f: typeof coarse) => (f.spec as { data: { values: { series: string; cpus: string; p: number }[] } }).data.values;
    expect(lines(coarse).filter((l) => l.series === 'uffd (local)' && l.cpus === 'same')).toHaveLength(21);

    const fine = (seed: number) => {
      const q = sample(101, seed).sort((x, y) => x - y);
      return { fault_ns_cdf: q.filter((_, i) => i % 5 === 0).join(';'), fault_ns_cdf_fine: q.join(';') };
    };
    const rs = csvRows(
      [1, 2, 3].map((seed, i) => ({
        strategy: 'uffd',
        scenario: 'read-seq',
        source: 'local',
        region_bytes: 1 << 26,
        repetition: i,
        fault_ns_p50: 1,
        ...fine(seed),
      })),
    );
    const f = buildFigures(rs, { thesis }).figures.find((x) => x.name === 'fault-cdf')!;
    expect(f.caption).toContain('101 quantiles p0..p100 of fault_ns_cdf_fine');
    expect(lines(f)).toHaveLength(101);
    const p99 = (lines(f) as unknown as { p: number; us: number; lo: number; hi: number }[])[99];
    expect(p99.p).toBeCloseTo(0.99);
    expect(p99.lo).toBeLessThanOrEqual(p99.us);
    expect(p99.hi).toBeGreaterThanOrEqual(p99.us);
    // One row without the fine list: the whole figure falls back (no mixing of the two).
    const mixed = [
      ...rs,
      ...csvRows([
        { strategy: 'uffd', scenario: 'read-seq', source: 'local', region_bytes: 1 << 26, repetition: 3, fault_ns_p50: 1, fault_ns_cdf: fine(9).fault_ns_cdf },
      ]),
    ];
    expect(buildFigures(mixed, { thesis }).figures.find((x) => x.name === 'fault-cdf')!.caption).toContain('no fault_ns_cdf_fine');
  });

  it('every figure module is covered by a caption that names its spread', () => {
    for (const def of FIGURES) expect(def.caption, def.name).toMatch(/interval|min\.\.max|band|bar|rule/);
  });
});
