// Regions larger than the resident set (issue 19, matrix `resident`):
// throughput and hit rate against the resident limit, per eviction policy and
// strategy, one column per access pattern. Hit rate = accesses that did not
// fault / accesses (1 - faults / chunks_touched): read-random touches each
// chunk once, so it has no hits to win and is the floor.
import type { TopLevelSpec } from 'vega-lite';
import type { RunRow } from '../runs.js';
import { CONFIG, provenance, seriesEncoding } from '../spec-common.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, groupBy, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const SCENARIOS = ['read-random', 'read-zipf', 'write-random'];

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(
    (r) =>
      SCENARIOS.includes(r.scenario) &&
      r.designSpace?.residentLimit != null &&
      r.throughputMibps !== null &&
      r.designSpace.faults != null &&
      (r.designSpace.chunksTouched ?? 0) > 0,
  );
  const swept = [...groupBy(sel, (r) => `${r.strategy}\u0000${r.designSpace!.evict}\u0000${r.scenario}\u0000${r.regionBytes}`).values()]
    .filter((g) => new Set(g.map((r) => r.designSpace!.residentLimit)).size >= 2)
    .flat();
  if (swept.length === 0) return null;
  const pts = [...groupBy(swept, (r) => `${r.strategy}\u0000${r.designSpace!.evict}\u0000${r.scenario}\u0000${r.designSpace!.residentLimit}`).values()].flatMap(
    (g) => {
      const d = g[0].designSpace!;
      const base = {
        series: `${g[0].strategy}, ${d.evict || 'fifo'}`,
        scenario: g[0].scenario,
        limitMiB: d.residentLimit! / 2 ** 20,
        share: g[0].regionBytes ? d.residentLimit! / g[0].regionBytes : null,
      };
      const t = bootstrapMedian(values(g, (r) => r.throughputMibps));
      const h = bootstrapMedian(values(g, (r) => 1 - (r.designSpace!.faults ?? 0) / (r.designSpace!.chunksTouched ?? 1)));
      return [
        { ...base, metric: 'throughput (MiB/s)', median: t.value, lo: t.lo, hi: t.hi, reps: t.n },
        { ...base, metric: 'hit rate', median: h.value, lo: h.lo, hi: h.hi, reps: h.n },
      ];
    },
  );
  const series = pts.map((p) => p.series);
  const limits = [...new Set(pts.map((p) => p.limitMiB))].sort((a, b) => a - b);
  const x = {
    field: 'limitMiB',
    type: 'quantitative' as const,
    title: 'resident limit (MiB, log scale)',
    scale: { type: 'log' as const, base: 2 },
    axis: { values: limits, format: '~g' },
  };
  const y = { field: 'median', type: 'quantitative' as const, title: null, axis: { format: ',.4~g' } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Throughput and hit rate against the resident limit',
      subtitle: [...provenance(runId, false), `medians, band: ${BOOTSTRAP_NOTE}; hit rate = 1 - faults / accesses`],
    },
    config: CONFIG,
    data: { values: pts },
    facet: {
      row: { field: 'metric', type: 'nominal', title: null, sort: ['throughput (MiB/s)', 'hit rate'] },
      column: { field: 'scenario', type: 'nominal', title: null, sort: SCENARIOS },
    },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 200,
      height: 180,
      layer: [
        {
          mark: { type: 'area', opacity: 0.15 },
          encoding: { x, y: { field: 'lo', type: 'quantitative' as const, title: null }, y2: { field: 'hi' }, ...seriesEncoding(series, false) },
        },
        { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, ...seriesEncoding(series, false) } },
        {
          mark: { type: 'point', filled: true, size: 40 },
          encoding: {
            x,
            y,
            ...seriesEncoding(series, true),
            tooltip: [
              { field: 'series' },
              { field: 'scenario' },
              { field: 'limitMiB' },
              { field: 'median', format: '.3f' },
              { field: 'lo', format: '.3f' },
              { field: 'hi', format: '.3f' },
              { field: 'reps' },
            ],
          },
        },
      ],
    },
  } as TopLevelSpec;
}

export const residentLimit: FigureDef = {
  name: 'resident-limit',
  caption:
    "Throughput (top) and hit rate (bottom) against the resident limit, per strategy and eviction policy (FIFO, clock), for a region larger than the limit; medians over n repetitions (n in each point's tooltip and in the paper's resident-limit table), the band each median's 95 % bootstrap interval. " +
    'A miss past the limit evicts a chunk (a written one is written back first), so hit rate is what the policy keeps; read-random touches each chunk once and has none to keep. ' +
    "uffd's clock sees only fetches and first writes (reads of a resident chunk reach no user-space reference bit here), so its hit rate equals FIFO's; sigsegv's clock closes a chunk as the hand clears its bit and sees the next access.",
  build,
};
