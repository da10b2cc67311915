// Per-fault latency distribution of the lazy strategies at 0 ms RTT, one line
// per strategy/source and CPU placement (same/split/free), from the 21
// quantiles in fault_ns_cdf. Repetitions are combined by the median of each quantile.
import type { TopLevelSpec } from 'vega-lite';
import { compareMethods, methodLabel } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, WIDTH } from '../spec-common.js';
import { describeParameters, oneParameterSet } from '../slice.js';
import { groupBy, median } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const LAZY = ['uffd', 'sigsegv'];
const DASHES: Record<string, number[]> = { same: [1, 0], split: [7, 4], free: [2, 3] };

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  // CPU placement is a dimension of this figure, so it does not pick the parameter set.
  const sel = oneParameterSet(
    rows.filter((r) => r.scenario === 'read-seq' && r.rttMs === 0 && LAZY.includes(r.strategy) && r.faultNsCdf !== null),
    'largest-region',
    ['cpus'],
  );
  if (sel.length === 0) return null;
  const lines = [...groupBy(sel, (r) => `${methodLabel(r)}\u0000${r.cpus}`).values()].flatMap((g) =>
    g[0].faultNsCdf!.map((_, i) => ({
      series: methodLabel(g[0]),
      cpus: g[0].cpus,
      p: i / 20,
      us: median(g.map((r) => r.faultNsCdf![i])) / 1e3,
    })),
  );
  const series = lines.map((l) => l.series).sort(compareMethods);
  const cpus = ['same', 'split', 'free'].filter((c) => lines.some((l) => l.cpus === c));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Per-fault latency CDF at 0 ms RTT (sequential read)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        'cpus: same = workload and handler share CPUs, split = separate CPUs, free = scheduler decides',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    data: { values: lines },
    mark: { type: 'line', strokeWidth: 2, point: { size: 14 } },
    encoding: {
      x: { field: 'us', type: 'quantitative', title: 'per-fault latency (µs, log scale)', scale: { type: 'log' } },
      y: { field: 'p', type: 'quantitative', title: 'fraction of faults ≤ latency', scale: { domain: [0, 1] }, axis: { format: '.0%' } },
      ...seriesEncoding(series, false, { symbolType: 'stroke', symbolStrokeWidth: 3, symbolSize: 300 }),
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
      tooltip: [{ field: 'series' }, { field: 'cpus' }, { field: 'p', format: '.0%' }, { field: 'us', format: '.2f' }],
    },
  };
}

export const faultCdf: FigureDef = {
  name: 'fault-cdf',
  caption:
    'Per-fault latency CDF of the lazy strategies at 0 ms RTT, 4 KiB chunks, sequential read: 21 quantiles (p0..p100) per run, ' +
    'median over repetitions; line style = CPU placement of workload and handler. The thesis has no counterpart.',
  build,
};
