// Run-to-run spread: two or more full runs of a matrix on one machine, cell by
// cell, for every matrix given more than once (two studies: every matrix of
// the paper). Intervals within a run say how well n repetitions pin a median;
// this says how far the median itself moves when the whole matrix is run again
// (other load on the machine, another boot, another day), which is the
// yardstick for any difference the paper interprets.
import { formatInterval, formatNs, formatMibps, formatRatio, mdTable, sig } from './format.js';
import { isPushScenario } from './push.js';
import { sameMachineRatios } from './ratios.js';
import { methodLabel, okRows, type RunRow } from './runs.js';
import { bytes } from './slice.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, groupBy, median, values, type Interval } from './stats.js';

export interface SpreadRun {
  /** The run's label in the tables; unique among the runs compared (rows are matched to runs by it, never by run_id). */
  id: string;
  /** How the text names the run's folder; default results/<id>. */
  folder?: string;
  /** env.json's matrix: runs are compared cell by cell with the runs of their own matrix only. */
  matrix?: string;
  rows: RunRow[];
}

/** The runs of one matrix, in the order given. */
export interface MatrixRuns {
  matrix: string;
  runs: SpreadRun[];
}

const NOT_RECORDED = 'not recorded';

/** The runs grouped by matrix, matrices in first-seen order. */
export function runsByMatrix(runs: SpreadRun[]): MatrixRuns[] {
  return [...groupBy(runs, (r) => r.matrix ?? NOT_RECORDED)].map(([matrix, rs]) => ({ matrix, runs: rs }));
}

/** The measure a cell is judged by: what its figure plots. */
function measureOf(scenario: string): { name: string; get: (r: RunRow) => number | null; fmt: (v: number | null) => string } | null {
  if (scenario === 'first-chunk') return { name: 'first access', get: (r) => r.firstAccessNs, fmt: formatNs };
  if (scenario === 'floor' || scenario === 'transport') return { name: 'fault p50', get: (r) => r.faultNsP50, fmt: formatNs };
  if (isPushScenario(scenario)) return { name: 'total', get: (r) => r.totalNs, fmt: formatNs };
  if (scenario.startsWith('read-')) return { name: 'throughput', get: (r) => r.throughputMibps, fmt: formatMibps };
  return null;
}

const cellKey = (r: RunRow) =>
  [
    r.scenario,
    methodLabel(r),
    r.rttMs,
    r.regionBytes,
    r.chunkBytes,
    r.cpus,
    r.handlerThreads,
    r.designSpace?.prefetch ?? '',
    r.designSpace?.appThreads ?? 1,
  ].join('\u0000');

export interface CellSpread {
  matrix: string;
  scenario: string;
  method: string;
  rttMs: number;
  regionBytes: number | null;
  chunkBytes: number;
  cpus: string;
  measure: string;
  fmt: (v: number | null) => string;
  /** One interval per run of its matrix, in the runs' order. */
  perRun: Interval[];
  /** Largest over smallest of the runs' medians (>= 1). */
  maxOverMin: number;
  /** Whether every run's interval shares a point with every other's; null when a run has one repetition (no interval). */
  overlap: boolean | null;
}

/** Every cell that each run of its matrix holds ok rows of, with each run's median and interval; matrices with one run are left out. */
export function cellSpreads(runs: SpreadRun[]): CellSpread[] {
  checkIds(runs);
  return runsByMatrix(runs)
    .filter((g) => g.runs.length >= 2)
    .flatMap((g) => matrixCellSpreads(g));
}

function matrixCellSpreads({ matrix, runs }: MatrixRuns): CellSpread[] {
  const perRun = runs.map((run) => groupBy(okRows(run.rows), cellKey));
  const out: CellSpread[] = [];
  for (const [key, first] of perRun[0]) {
    const m = measureOf(first[0].scenario);
    if (!m) continue;
    const groups = perRun.map((g) => g.get(key));
    if (groups.some((g) => !g || values(g, m.get).length === 0)) continue;
    const ivs = groups.map((g) => bootstrapMedian(values(g!, m.get)));
    const meds = ivs.map((iv) => iv.value);
    const r = first[0];
    out.push({
      matrix,
      scenario: r.scenario,
      method: methodLabel(r),
      rttMs: r.rttMs,
      regionBytes: r.regionBytes,
      chunkBytes: r.chunkBytes,
      cpus: r.cpus,
      measure: m.name,
      fmt: m.fmt,
      perRun: ivs,
      maxOverMin: Math.min(...meds) > 0 ? Math.max(...meds) / Math.min(...meds) : NaN,
      overlap: ivs.some((iv) => iv.n < 2) ? null : Math.max(...ivs.map((iv) => iv.lo)) <= Math.min(...ivs.map((iv) => iv.hi)),
    });
  }
  return out;
}

/** Labels head the tables' columns; two runs under one label would read as one. */
function checkIds(runs: SpreadRun[]): void {
  const seen = new Set<string>();
  for (const r of runs) {
    if (seen.has(r.id)) throw new Error(`run-to-run spread: two runs are labelled ${r.id}; give each run once, each under its own label`);
    seen.add(r.id);
  }
}

const folderOf = (r: SpreadRun) => r.folder ?? `results/${r.id}`;

/**
 * The heading of the i-th run column of a table over several matrices: the
 * label when every matrix's i-th run has the same one, else their common
 * parent (study-A for study-A/thesis and study-A/push), else "run i".
 */
function positionLabel(groups: MatrixRuns[], i: number): string {
  const ids = [...new Set(groups.flatMap((g) => (g.runs[i] ? [g.runs[i].id] : [])))];
  if (ids.length === 1) return ids[0];
  const parents = new Set(ids.map((id) => (id.includes('/') ? id.slice(0, id.lastIndexOf('/')) : null)));
  const [parent] = parents;
  return parents.size === 1 && parent !== null ? parent : `run ${i + 1}`;
}

/** Same-machine ratios (analysis/ratios.ts) of each run of a matrix, one column per run; null when the matrix has none of them. */
function ratioTable({ runs }: MatrixRuns): string | null {
  const ratioRows = runs.map((r) => sameMachineRatios(r.rows));
  const rows = ratioRows[0]
    .map((_, k) => {
      const ivs = ratioRows.map((rr) => rr[k].ours);
      const vals = ivs.filter((iv): iv is Interval => iv !== null).map((iv) => iv.value);
      return [
        ratioRows[0][k].def.label,
        ...ivs.map((iv) => (iv ? `${formatInterval(iv, formatRatio)} (${iv.n}/${iv.nDen})` : 'not measured')),
        vals.length === ivs.length ? formatRatio(Math.max(...vals) / Math.min(...vals)) : '–',
      ];
    })
    .filter((row) => row.slice(1, -1).some((c) => c !== 'not measured'));
  if (rows.length === 0) return null;
  return mdTable(['same-machine ratio (0 ms RTT)', ...runs.map((r) => `${r.id} [95 % CI] (n)`), 'largest / smallest'], rows);
}

/**
 * The markdown of the spread section: which runs were compared (and which
 * matrices had one run only), within-run ratios per run, spread by matrix and
 * scenario, the most variable cells over every matrix.
 */
export function runSpreadMarkdown(runs: SpreadRun[], top = 10): string {
  checkIds(runs);
  const groups = runsByMatrix(runs);
  const compared = groups.filter((g) => g.runs.length >= 2);
  const single = groups.filter((g) => g.runs.length === 1);
  const singleNote = single.length === 0 ? null : `Not compared, one run only: ${single.map((g) => `matrix ${g.matrix} (${folderOf(g.runs[0])})`).join(', ')}.`;
  if (compared.length === 0) return ['No two runs of one matrix were given, so there is no run-to-run spread to show.', singleNote].filter(Boolean).join(' ');

  const cells = compared.flatMap((g) => matrixCellSpreads(g));
  const byScenario = [...groupBy(cells, (c) => `${c.matrix}\u0000${c.scenario}`).values()].map((cs) => {
    const worst = cs.reduce((a, b) => (b.maxOverMin > a.maxOverMin ? b : a));
    return [
      cs[0].matrix,
      cs[0].scenario,
      cs[0].measure,
      cs.length,
      formatRatio(median(cs.map((c) => c.maxOverMin))),
      `${formatRatio(worst.maxOverMin)} (${worst.method}, ${worst.rttMs} ms)`,
      `${cs.filter((c) => c.overlap === false).length} of ${cs.filter((c) => c.overlap !== null).length}` +
        (cs.some((c) => c.overlap === null) ? ` (${cs.filter((c) => c.overlap === null).length} with n = 1: no interval)` : ''),
    ];
  });
  const scenarioTable = mdTable(
    ['matrix', 'scenario', 'measure', 'cells in every run', 'median of largest/smallest run median', 'largest (cell)', 'cells whose intervals do not overlap'],
    byScenario,
  );
  const worst = [...cells]
    .sort((a, b) => b.maxOverMin - a.maxOverMin || a.matrix.localeCompare(b.matrix) || a.scenario.localeCompare(b.scenario))
    .slice(0, top);
  const columns = Math.max(...compared.map((g) => g.runs.length));
  const worstTable = mdTable(
    [
      'matrix',
      'scenario',
      'method',
      'RTT (ms)',
      'region',
      'chunk',
      'cpus',
      'measure',
      ...Array.from({ length: columns }, (_, i) => `${positionLabel(compared, i)} (n)`),
      'largest / smallest',
    ],
    worst.map((c) => [
      c.matrix,
      c.scenario,
      c.method,
      c.rttMs,
      c.regionBytes === null ? '–' : bytes(c.regionBytes),
      bytes(c.chunkBytes),
      c.cpus,
      c.measure,
      ...Array.from({ length: columns }, (_, i) => (c.perRun[i] ? `${formatInterval(c.perRun[i], c.fmt)} (${c.perRun[i].n})` : '–')),
      formatRatio(c.maxOverMin),
    ]),
  );
  const ratioTables = compared.flatMap((g) => ratioTable(g) ?? []);
  const nonOverlap = cells.filter((c) => c.overlap === false).length;
  const comparable = cells.filter((c) => c.overlap !== null).length;
  return [
    `Runs compared, by matrix: ${compared.map((g) => `${g.matrix}: ${g.runs.map(folderOf).join(', ')}`).join('; ')}; ${cells.length} cells present in every run of their matrix. ` +
      `Each value is a median with its ${BOOTSTRAP_NOTE}; n is the number of repetitions in that run (numerator/denominator for a ratio). ` +
      `In ${nonOverlap} of the ${comparable} cells with two or more repetitions in every run (${sig((100 * nonOverlap) / Math.max(1, comparable))} %) the runs' intervals do not overlap: ` +
      'there the median moves between runs by more than the repetitions within one run suggest.' +
      (singleNote ? ` ${singleNote}` : ''),
    ...ratioTables,
    scenarioTable,
    `The ${worst.length} cells whose median moves most between runs${compared.length > 1 ? ' (over every matrix)' : ''}:`,
    worstTable,
  ].join('\n\n');
}
