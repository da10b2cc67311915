// Per-fault latency distribution of the lazy strategies at 0 ms RTT, one line
// per strategy/source and CPU placement (same/split/free). From the 101
// quantiles of fault_ns_cdf_fine where every row has them, else from the 21 of
// fault_ns_cdf (older runs; the caption then says so). Repetitions are combined
// by the median of each quantile, with its 95 % bootstrap interval as a band.
import type { TopLevelSpec } from 'vega-lite';
import { compareMethods, methodLabel, type RunRow } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, WIDTH } from '../spec-common.js';
import { describeParameters, oneParameterSet } from '../slice.js';
import { bootstrapMedian, groupBy } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const LAZY = ['uffd', 'sigsegv'];
const DASHES: Record<string, number[]> = { same: [1, 0], split: [7, 4], free: [2, 3] };

/** The quantile list the figure draws: the fine one when every selected row has it. */
export function cdfSource(rows: RunRow[]): { fine: boolean; of: (r: RunRow) => number[] } {
  const fine = rows.length > 0 && rows.every((r) => r.faultNsCdfFine);
  return { fine, of: (r) => (fine ? r.faultNsCdfFine! : r.faultNsCdf!) };
}

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  // CPU placement is a dimension of this figure, so it does not pick the parameter set.
  const sel = oneParameterSet(
    rows.filter((r) => r.scenario === 'read-seq' && r.rttMs === 0 && LAZY.includes(r.strategy) && r.faultNsCdf !== null),
    'largest-region',
    ['cpus'],
  );
  if (sel.length === 0) return null;
  const src = cdfSource(sel);
  const lines = [...groupBy(sel, (r) => `${methodLabel(r)}\u0000${r.cpus}`).values()].flatMap((g) => {
    const steps = src.of(g[0]).length - 1;
    return src.of(g[0]).map((_, i) => {
      const iv = bootstrapMedian(g.map((r) => src.of(r)[i]));
      return { series: methodLabel(g[0]), cpus: g[0].cpus, p: i / steps, us: iv.value / 1e3, lo: iv.lo / 1e3, hi: iv.hi / 1e3, reps: g.length };
    });
  });
  const series = lines.map((l) => l.series).sort(compareMethods);
  const cpus = ['same', 'split', 'free'].filter((c) => lines.some((l) => l.cpus === c));
  const x = { field: 'us', type: 'quantitative' as const, title: 'per-fault latency (µs, log scale)', scale: { type: 'log' as const } };
  const y = { field: 'p', type: 'quantitative' as const, title: 'fraction of faults ≤ latency', scale: { domain: [0, 1] }, axis: { format: '.0%' } };
  const legend = { symbolType: 'stroke', symbolStrokeWidth: 3, symbolSize: 300 };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    usermeta: {
      note: src.fine
        ? 'Drawn from the 101 quantiles p0..p100 of fault_ns_cdf_fine.'
        : 'These rows have no fault_ns_cdf_fine (runs before that column), so the lines join the 21 quantiles p0, p5, ..., p100 of fault_ns_cdf: between them the shape is interpolated, not measured.',
    },
    title: {
      text: 'Per-fault latency CDF at 0 ms RTT (sequential read)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        `${src.fine ? '101 quantiles (fault_ns_cdf_fine)' : '21 quantiles (fault_ns_cdf; no fine list in these rows)'}; band: 95 % CI of each quantile's median`,
        'cpus: same = workload and handler share CPUs, split = separate CPUs, free = scheduler decides',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values: lines },
    layer: [
      {
        mark: { type: 'area', opacity: 0.15, orient: 'horizontal' },
        encoding: { x: { ...x, field: 'lo' }, x2: { field: 'hi' }, y, ...seriesEncoding(series, false, legend), detail: { field: 'cpus' } },
      },
      {
        mark: { type: 'line', strokeWidth: 2, ...(src.fine ? {} : { point: { size: 14 } }) },
        encoding: {
          x,
          y,
          ...seriesEncoding(series, false, legend),
          strokeDash: {
            field: 'cpus',
            type: 'nominal',
            title: 'cpus',
            scale: { domain: cpus, range: cpus.map((c) => DASHES[c]) },
            legend: {
              symbolType: 'stroke',
              symbolSize: 300,
              // vega-lite gives strokeDash legend symbols a transparent stroke; draw them in grey.
              // It passes `encode` through to vega, but its Legend type omits it.
              ...({ encode: { symbols: { update: { stroke: { value: '#333' }, strokeWidth: { value: 2 } } } } } as object),
            },
          },
          detail: { field: 'cpus' },
          tooltip: [
            { field: 'series' },
            { field: 'cpus' },
            { field: 'p', format: '.0%' },
            { field: 'us', format: '.2f' },
            { field: 'lo', format: '.2f' },
            { field: 'hi', format: '.2f' },
            { field: 'reps' },
          ],
        },
      },
    ],
  };
}

export const faultCdf: FigureDef = {
  name: 'fault-cdf',
  caption:
    'Per-fault latency CDF of the lazy strategies at 0 ms RTT, 4 KiB chunks, sequential read: per repetition the quantiles of its per-access times, ' +
    'combined by the median of each quantile over repetitions (band: its 95 % bootstrap interval); line style = CPU placement of workload and handler. The thesis has no counterpart.',
  build,
};
