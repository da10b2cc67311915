// The paper's `setup-cost` section: what each strategy pays before its first
// access (setup_ns: mapping, pre-population, registration, handler threads),
// outside the timed workload, beside its first access and its per-fault cost
// with and without that set-up. sigsegv prepares at set-up what uffd does in
// its faults, so a comparison of faults alone flatters it; this says how much.
import { compareMethods, methodLabel, okRows, type RunRow } from './runs.js';
import { formatInterval, formatNs, mdTable } from './format.js';
import { bytes, oneParameterSet } from './slice.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, groupBy, values } from './stats.js';

type Get = (r: RunRow) => number | null;

const ci = (g: RunRow[], f: Get) => {
  const xs = values(g, f);
  return xs.length ? `${formatInterval(bootstrapMedian(xs), formatNs)}` : '–';
};

const setup: Get = (r) => r.setupNs ?? null;
/** Per repetition: the first access with the set-up before it. */
const firstWithSetup: Get = (r) => (r.setupNs != null && r.firstAccessNs !== null ? r.setupNs + r.firstAccessNs : null);
/** Per repetition: the set-up spread over the region's chunks (each read once by read-seq). */
const setupPerChunk: Get = (r) => (r.setupNs != null && r.regionBytes ? r.setupNs / (r.regionBytes / r.chunkBytes) : null);
const faultWithSetup: Get = (r) => {
  const s = setupPerChunk(r);
  return s !== null && r.faultNsP50 !== null ? r.faultNsP50 + s : null;
};

const LAZY_AND_BASELINES = new Set(['memory', 'disk', 'eager', 'uffd', 'sigsegv']);

/** Rows of one scenario at 0 ms RTT, one parameter set per method (as the figures pick), with setup_ns. */
function cells(rows: RunRow[], scenario: string): RunRow[][] {
  const sel = oneParameterSet(
    okRows(rows).filter((r) => r.scenario === scenario && r.rttMs === 0 && LAZY_AND_BASELINES.has(r.strategy)),
    'largest-region',
  ).filter((r) => r.setupNs != null);
  return [...groupBy(sel, methodLabel).values()].sort((a, b) => compareMethods(methodLabel(a[0]), methodLabel(b[0])));
}

export function setupCostSection(rows: RunRow[]): string {
  const first = cells(rows, 'first-chunk');
  const seq = cells(rows, 'read-seq');
  if (!first.length && !seq.length) return 'No set-up times (column setup_ns) in these rows: runs before that column do not record them.';
  const parts = [`Medians over the n repetitions [${BOOTSTRAP_NOTE}]; sums are taken per repetition, then their median. 0 ms RTT.`];
  if (first.length)
    parts.push(
      mdTable(
        ['method', 'region', 'n', 'set-up (setup_ns)', 'first access', 'set-up + first access'],
        first.map((g) => [
          methodLabel(g[0]),
          g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes),
          g.length,
          ci(g, setup),
          ci(g, (r) => r.firstAccessNs),
          ci(g, firstWithSetup),
        ]),
      ),
    );
  if (seq.length)
    parts.push(
      'Sequential read: the set-up spread over the chunks of the region (each is faulted once), beside the median fault:',
      mdTable(
        ['method', 'region, chunk', 'n', 'fault p50', 'set-up per chunk', 'fault p50 + set-up per chunk'],
        seq.map((g) => [
          methodLabel(g[0]),
          `${g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes)}, ${bytes(g[0].chunkBytes)}`,
          g.length,
          ci(g, (r) => r.faultNsP50),
          ci(g, setupPerChunk),
          ci(g, faultWithSetup),
        ]),
      ),
    );
  return parts.join('\n\n');
}
