// Run-to-run spread: two or more full runs of one matrix on one machine, cell
// by cell. Intervals within a run say how well n repetitions pin a median;
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
  id: string;
  /** env.json's matrix; runs of different matrices cannot be compared cell by cell. */
  matrix?: string;
  rows: RunRow[];
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
  scenario: string;
  method: string;
  rttMs: number;
  regionBytes: number | null;
  chunkBytes: number;
  cpus: string;
  measure: string;
  fmt: (v: number | null) => string;
  /** One interval per run, in the runs' order. */
  perRun: Interval[];
  /** Largest over smallest of the runs' medians (>= 1). */
  maxOverMin: number;
  /** Whether every run's interval shares a point with every other's; null when a run has one repetition (no interval). */
  overlap: boolean | null;
}

/** Every cell that each run holds ok rows of, with each run's median and interval. */
export function cellSpreads(runs: SpreadRun[]): CellSpread[] {
  checkRuns(runs);
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

function checkRuns(runs: SpreadRun[]): void {
  if (runs.length < 2) throw new Error(`run-to-run spread needs two or more runs of one matrix, got ${runs.length}`);
  const matrices = new Set(runs.map((r) => r.matrix ?? 'not recorded'));
  if (matrices.size > 1) throw new Error(`run-to-run spread needs runs of one matrix; these are of ${[...matrices].join(', ')}`);
}

/** The markdown of the spread section: within-run ratios per run, spread by scenario, the most variable cells. */
export function runSpreadMarkdown(runs: SpreadRun[], top = 10): string {
  const cells = cellSpreads(runs);
  const ids = runs.map((r) => r.id);
  const ratioRows = runs.map((r) => sameMachineRatios(r.rows));
  const ratioTable = mdTable(
    ['same-machine ratio (0 ms RTT)', ...ids.map((id) => `${id} [95 % CI] (n)`), 'largest / smallest'],
    ratioRows[0]
      .map((_, k) => {
        const ivs = ratioRows.map((rr) => rr[k].ours);
        const vals = ivs.filter((iv): iv is Interval => iv !== null).map((iv) => iv.value);
        return [
          ratioRows[0][k].def.label,
          ...ivs.map((iv) => (iv ? `${formatInterval(iv, formatRatio)} (${iv.n}/${iv.nDen})` : 'not measured')),
          vals.length === ivs.length ? formatRatio(Math.max(...vals) / Math.min(...vals)) : '–',
        ];
      })
      .filter((row) => row.slice(1, -1).some((c) => c !== 'not measured')),
  );
  const byScenario = [...groupBy(cells, (c) => c.scenario)].map(([scenario, cs]) => {
    const worst = cs.reduce((a, b) => (b.maxOverMin > a.maxOverMin ? b : a));
    return [
      scenario,
      cs[0].measure,
      cs.length,
      formatRatio(median(cs.map((c) => c.maxOverMin))),
      `${formatRatio(worst.maxOverMin)} (${worst.method}, ${worst.rttMs} ms)`,
      `${cs.filter((c) => c.overlap === false).length} of ${cs.filter((c) => c.overlap !== null).length}` +
        (cs.some((c) => c.overlap === null) ? ` (${cs.filter((c) => c.overlap === null).length} with n = 1: no interval)` : ''),
    ];
  });
  const scenarioTable = mdTable(
    ['scenario', 'measure', 'cells in every run', 'median of largest/smallest run median', 'largest (cell)', 'cells whose intervals do not overlap'],
    byScenario,
  );
  const worst = [...cells].sort((a, b) => b.maxOverMin - a.maxOverMin || a.scenario.localeCompare(b.scenario)).slice(0, top);
  const worstTable = mdTable(
    ['scenario', 'method', 'RTT (ms)', 'region', 'chunk', 'cpus', 'measure', ...ids.map((id) => `${id} (n)`), 'largest / smallest'],
    worst.map((c) => [
      c.scenario,
      c.method,
      c.rttMs,
      c.regionBytes === null ? '–' : bytes(c.regionBytes),
      bytes(c.chunkBytes),
      c.cpus,
      c.measure,
      ...c.perRun.map((iv) => `${formatInterval(iv, c.fmt)} (${iv.n})`),
      formatRatio(c.maxOverMin),
    ]),
  );
  const nonOverlap = cells.filter((c) => c.overlap === false).length;
  const comparable = cells.filter((c) => c.overlap !== null).length;
  return [
    `Runs compared: ${ids.map((id) => `results/${id}`).join(', ')} (matrix ${runs[0].matrix ?? 'not recorded'}), ${cells.length} cells present in every run. ` +
      `Each value is a median with its ${BOOTSTRAP_NOTE}; n is the number of repetitions in that run (numerator/denominator for a ratio). ` +
      `In ${nonOverlap} of the ${comparable} cells with two or more repetitions in every run (${sig((100 * nonOverlap) / Math.max(1, comparable))} %) the runs' intervals do not overlap: ` +
      'there the median moves between runs by more than the repetitions within one run suggest.',
    ratioTable,
    scenarioTable,
    `The ${worst.length} cells whose median moves most between runs:`,
    worstTable,
  ].join('\n\n');
}
