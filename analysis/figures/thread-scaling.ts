// Several application threads faulting on one region: uffd funnels every
// fault through its handler threads (one fd), sigsegv serves each fault on the
// faulting thread; at RTT > 0 that decides how many round trips overlap.
import type { TopLevelSpec } from 'vega-lite';
import { policyLabel } from '../design-space.js';
import type { RunRow } from '../runs.js';
import { bytes } from '../slice.js';
import { panelledLines, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const label = (r: RunRow) =>
  r.strategy === 'uffd' ? `${policyLabel(r)}, ${r.handlerThreads ?? 1} handler thread${(r.handlerThreads ?? 1) > 1 ? 's' : ''}` : policyLabel(r);
const panel = (r: RunRow) => `${r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local'}, ${bytes(r.chunkBytes)} chunks`;

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(
    (r) =>
      (r.scenario === 'read-random' || r.scenario === 'read-seq') &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      r.designSpace &&
      r.throughputMibps !== null,
  );
  // Only series swept over at least three thread counts. A sweep is one region and one VMA span: other cells of the
  // same method, panel and scenario at one thread count (the VMA-limit cells read 256 MiB-1 GiB) are not its points.
  const sweep = (r: RunRow) => `${label(r)}\u0000${panel(r)}\u0000${r.scenario}\u0000${r.regionBytes}\u0000${r.designSpace!.vmaSpan ?? 1}`;
  const swept = [...groupBy(sel, sweep).values()].filter((g) => new Set(g.map((r) => r.designSpace!.appThreads)).size >= 3).flat();
  if (swept.length === 0) return null;
  const pts = [...groupBy(swept, (r) => `${sweep(r)}\u0000${r.designSpace!.appThreads}`).values()].map((g) => {
    const s = spread(values(g, (r) => r.throughputMibps));
    return {
      series: label(g[0]),
      panel: `${panel(g[0])}, ${g[0].scenario}`,
      threads: g[0].designSpace!.appThreads,
      median: s.median,
      min: s.min,
      max: s.max,
      lo: s.lo,
      hi: s.hi,
      reps: s.n,
    };
  });
  return panelledLines({
    title: 'Scaling with application threads',
    subtitle: [...provenance(runId, false), "throughput: all bytes read over the slowest thread's access time; each thread reads its own share"],
    values: pts,
    x: { field: 'threads', type: 'quantitative', title: 'application threads', scale: { type: 'log', base: 2 }, axis: { values: [1, 2, 4, 8, 16] } },
    y: { field: 'median', type: 'quantitative', title: 'read throughput (MiB/s, log scale)', scale: { type: 'log' } },
    tooltip: [
      { field: 'series' },
      { field: 'panel' },
      { field: 'threads' },
      { field: 'median', format: '.1f' },
      { field: 'min' },
      { field: 'max' },
      { field: 'lo' },
      { field: 'hi' },
      { field: 'reps' },
    ],
  });
}

export const threadScaling: FigureDef = {
  name: 'thread-scaling',
  caption:
    'Read throughput against the number of application threads faulting at once on one region (median over repetitions with its 95 % bootstrap interval as an error bar, log-log; each thread its own share of the chunks). ' +
    'uffd with one handler thread serves faults one after another; more handler threads, or sigsegv (each thread serves its own fault), overlap round trips.',
  build,
};
