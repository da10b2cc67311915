// Two latency emulations compared (matrix latency-methods, issue 18): what a
// configured RTT becomes under faultlab's server-delay and under nbdkit's delay
// filter, first-chunk latency and the time per chunk of a sequential read,
// one line per method, one panel per strategy, the configured RTT as the
// dashed diagonal.
import type { TopLevelSpec } from 'vega-lite';
import type { RunRow } from '../runs.js';
import { bytes } from '../slice.js';
import { CONFIG, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

export const LATENCY_METHODS = ['server-delay', 'nbdkit-delay'] as const;
const STRATEGIES = ['eager', 'uffd', 'sigsegv'];
const MEASURES: Record<string, string> = {
  'first-chunk': 'first-chunk: first access (ms)',
  'read-seq': 'read-seq: time per chunk (ms)',
};

/** The measured time in ms a row shows for its configured RTT, or null. */
function measuredMs(r: RunRow): number | null {
  if (r.scenario === 'first-chunk') return r.firstAccessNs === null ? null : r.firstAccessNs / 1e6;
  if (r.scenario === 'read-seq') return r.throughputMibps ? (r.chunkBytes / (r.throughputMibps * 2 ** 20)) * 1000 : null;
  return null;
}

/** Runs that hold nbdkit-delay rows: this figure's; every other figure leaves them out. */
export function latencyMethodRuns(rows: RunRow[]): Set<string> {
  return new Set(rows.filter((r) => r.latency === 'nbdkit-delay').map((r) => r.runId));
}

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(
    (r) =>
      r.source === 'remote' &&
      (LATENCY_METHODS as readonly string[]).includes(r.latency) &&
      STRATEGIES.includes(r.strategy) &&
      r.scenario in MEASURES &&
      measuredMs(r) !== null,
  );
  if (!sel.some((r) => r.latency === 'nbdkit-delay')) return null;
  const stats = [...groupBy(sel, (r) => `${r.scenario}\u0000${r.strategy}\u0000${r.latency}\u0000${r.rttMs}`).values()].map((g) => {
    const s = spread(values(g, measuredMs));
    return {
      measure: MEASURES[g[0].scenario],
      strategy: g[0].strategy,
      method: g[0].latency,
      rtt: g[0].rttMs,
      median: s.median,
      min: s.min,
      max: s.max,
      reps: s.n,
    };
  });
  const strategies = STRATEGIES.filter((x) => stats.some((s) => s.strategy === x));
  const x = { field: 'rtt', type: 'quantitative' as const, title: 'configured round-trip time (ms)' };
  const y = { field: 'median', type: 'quantitative' as const, title: 'measured (ms)' };
  const colour = {
    field: 'method',
    type: 'nominal' as const,
    title: 'latency emulation',
    scale: { domain: [...LATENCY_METHODS], range: ['#4c78a8', '#f58518'] },
  };
  const regions = [...new Set(sel.map((r) => r.regionBytes).filter((b): b is number => b !== null))].map(bytes).join('/');
  const chunks = [...new Set(sel.map((r) => r.chunkBytes))].map(bytes).join('/');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Configured vs measured RTT: server-delay and nbdkit’s delay filter',
      subtitle: [
        ...provenance(runId, false, `regions ${regions}, chunks ${chunks}`),
        'dashed grey: measured = configured; medians, band min..max over repetitions',
      ],
    },
    config: CONFIG,
    data: { values: stats },
    facet: {
      row: { field: 'measure', type: 'nominal', title: null, sort: Object.values(MEASURES) },
      column: { field: 'strategy', type: 'nominal', title: null, sort: strategies },
    },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 200,
      height: 180,
      layer: [
        { mark: { type: 'line', strokeDash: [4, 4], color: '#999999' }, encoding: { x, y: { field: 'rtt', type: 'quantitative', title: 'measured (ms)' } } },
        {
          mark: { type: 'area', opacity: 0.18 },
          encoding: { x, y: { field: 'min', type: 'quantitative', title: 'measured (ms)' }, y2: { field: 'max' }, color: colour },
        },
        { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, color: colour } },
        {
          mark: { type: 'point', filled: true, size: 36 },
          encoding: {
            x,
            y,
            color: colour,
            tooltip: [
              { field: 'strategy' },
              { field: 'method' },
              { field: 'rtt' },
              { field: 'median', format: '.3f' },
              { field: 'min' },
              { field: 'max' },
              { field: 'reps' },
            ],
          },
        },
      ],
    },
  };
}

export const latencyMethods: FigureDef = {
  name: 'latency-methods',
  caption:
    'Two latency emulations at the same configured RTT (matrix latency-methods): faultlab’s server-delay (each reply leaves at its request’s receive time + RTT) ' +
    'and nbdkit’s delay filter in front of `nbdkit file` serving the same contents (each READ sleeps RTT before it is served). ' +
    'Top: first-chunk latency; bottom: sequential read, time per chunk (chunk size / throughput). Median, band min..max over repetitions; dashed: measured = configured.',
  build,
};
