// Where lazy pulling beats the eager copy: the time to finish a sparse read
// as the share of chunks touched falls, one panel per RTT. Eager pays for the
// whole region whatever is touched; lazy pays per chunk touched.
import type { TopLevelSpec } from 'vega-lite';
import { policyLabel } from '../design-space.js';
import { bytes } from '../slice.js';
import { panelledLines, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter((r) => r.scenario === 'read-sparse' && r.source === 'remote' && r.designSpace?.touchFraction != null && r.totalNs !== null);
  if (!sel.some((r) => r.strategy === 'eager') || !sel.some((r) => r.strategy !== 'eager')) return null;
  const pts = [...groupBy(sel, (r) => `${policyLabel(r)}\u0000${r.rttMs}\u0000${r.designSpace!.touchFraction}`).values()].map((g) => {
    const s = spread(values(g, (r) => r.totalNs! / 1e6));
    return {
      series: policyLabel(g[0]),
      rtt: `RTT ${g[0].rttMs} ms`,
      rttMs: g[0].rttMs,
      fraction: g[0].designSpace!.touchFraction!,
      median: s.median,
      min: s.min,
      max: s.max,
      lo: s.lo,
      hi: s.hi,
      reps: s.n,
    };
  });
  const rtts = [...new Set(pts.sort((a, b) => a.rttMs - b.rttMs).map((p) => p.rtt))];
  return panelledLines({
    title: 'Lazy vs eager as the touched share falls (sparse random read)',
    subtitle: [
      ...provenance(
        runId,
        false,
        `region ${[...new Set(sel.map((r) => bytes(r.regionBytes ?? 0)))].join('/')}, chunk ${[...new Set(sel.map((r) => bytes(r.chunkBytes)))].join('/')}`,
      ),
      'eager: the whole region copied first (1 MiB requests); lazy: one fault per touched chunk',
    ],
    values: pts,
    panelField: 'rtt',
    panelSort: rtts,
    x: { field: 'fraction', type: 'quantitative', title: 'share of chunks touched (log scale)', scale: { type: 'log' }, axis: { format: '.0%' } },
    y: { field: 'median', type: 'quantitative', title: 'time to finish (ms, log scale)', scale: { type: 'log' } },
    tooltip: [
      { field: 'series' },
      { field: 'rtt' },
      { field: 'fraction', format: '.0%' },
      { field: 'median', format: '.1f' },
      { field: 'lo', format: '.1f' },
      { field: 'hi', format: '.1f' },
      { field: 'reps' },
    ],
  });
}

export const lazyEagerCrossover: FigureDef = {
  name: 'lazy-eager-crossover',
  caption:
    'Time to finish a sparse random read (a share of the chunks, each once) against that share, one panel per RTT (median over repetitions with its 95 % bootstrap interval as an error bar, log-log). ' +
    'Eager copies the whole region before the first access; lazy strategies pay one round trip per touched chunk, so they win below a share that shrinks as RTT grows. ' +
    "With prefetch=background the time is the application's: its puller overlaps the copy with the accesses and goes on filling the region.",
  build,
};
