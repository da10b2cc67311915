// Chunk size from 4 KiB to 2 MiB: larger chunks amortise the per-fault and
// per-request costs (and round trips), at the price of moving bytes the
// application may never read.
import type { TopLevelSpec } from 'vega-lite';
import { policyLabel } from '../design-space.js';
import type { RunRow } from '../runs.js';
import { panelledLines, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const panel = (r: RunRow) => (r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local source');

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(
    (r) =>
      r.scenario === 'read-seq' &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      r.designSpace &&
      r.designSpace.appThreads === 1 &&
      r.designSpace.huge === 'none' &&
      r.throughputMibps !== null,
  );
  const swept = [...groupBy(sel, (r) => `${policyLabel(r)}\u0000${panel(r)}\u0000${r.regionBytes}`).values()]
    .filter((g) => new Set(g.map((r) => r.chunkBytes)).size >= 4)
    .flat();
  if (swept.length === 0) return null;
  const pts = [...groupBy(swept, (r) => `${policyLabel(r)}\u0000${panel(r)}\u0000${r.chunkBytes}`).values()].map((g) => {
    const s = spread(values(g, (r) => r.throughputMibps));
    return {
      series: policyLabel(g[0]),
      panel: panel(g[0]),
      kib: g[0].chunkBytes / 1024,
      median: s.median,
      min: s.min,
      max: s.max,
      lo: s.lo,
      hi: s.hi,
      reps: s.n,
    };
  });
  return panelledLines({
    title: 'Chunk size sweep (sequential read)',
    subtitle: [...provenance(runId, false), 'one fault (and one request) per chunk without prefetch'],
    values: pts,
    x: {
      field: 'kib',
      type: 'quantitative',
      title: 'chunk size (KiB, log scale)',
      scale: { type: 'log', base: 2 },
      axis: { values: [4, 16, 64, 256, 1024, 2048] },
    },
    y: { field: 'median', type: 'quantitative', title: 'read throughput (MiB/s, log scale)', scale: { type: 'log' } },
    tooltip: [
      { field: 'series' },
      { field: 'panel' },
      { field: 'kib' },
      { field: 'median', format: '.1f' },
      { field: 'lo', format: '.1f' },
      { field: 'hi', format: '.1f' },
      { field: 'reps' },
    ],
  });
}

export const chunkSweep: FigureDef = {
  name: 'chunk-sweep',
  caption:
    'Sequential read throughput against chunk size, 4 KiB to 2 MiB (median over repetitions with its 95 % bootstrap interval as an error bar, log-log), locally and over loopback with emulated RTT. ' +
    'Bigger chunks divide the number of faults and round trips; prefetch gets the same effect without enlarging the unit a fault installs.',
  build,
};
