// Huge pages (hugetlbfs, 2 MiB) against small pages, cell by cell: each method
// and source drawn only where the run has both, so every pair of bars differs
// in the pages behind the region alone (matrix `hugetlb`).
import type { TopLevelSpec } from 'vega-lite';
import type { RunRow } from '../runs.js';
import { CONFIG, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const method = (r: RunRow) =>
  r.strategy === 'uffd'
    ? `uffd ${r.designSpace?.uffdInstall === 'continue' || r.designSpace?.uffdInstall === 'move' ? r.designSpace.uffdInstall.toUpperCase() : 'COPY'}`
    : r.strategy;
const panel = (r: RunRow) => (r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local source');
const pages = (r: RunRow) => (r.designSpace?.huge === 'hugetlb' ? 'huge pages (hugetlb, 2 MiB)' : 'small pages (4 KiB)');
const PAGES = ['small pages (4 KiB)', 'huge pages (hugetlb, 2 MiB)'];

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(
    (r) =>
      r.scenario === 'read-seq' &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      r.designSpace &&
      r.designSpace.prefetch === 'none' &&
      r.designSpace.appThreads === 1 &&
      (r.designSpace.huge === 'hugetlb' || r.designSpace.huge === 'none') &&
      r.throughputMibps !== null,
  );
  // A twin: the same method, source, region and chunk on both kinds of page.
  const twins = [...groupBy(sel, (r) => `${method(r)}\u0000${panel(r)}\u0000${r.regionBytes}\u0000${r.chunkBytes}`).values()].filter(
    (g) => new Set(g.map((r) => r.designSpace?.huge)).size === 2,
  );
  if (twins.length === 0) return null;
  const pts = twins.flatMap((g) =>
    [...groupBy(g, pages).values()].map((h) => {
      const s = spread(values(h, (r) => r.throughputMibps));
      return { method: method(h[0]), panel: panel(h[0]), pages: pages(h[0]), median: s.median, min: s.min, max: s.max, lo: s.lo, hi: s.hi, reps: s.n };
    }),
  );
  const sizes = [...new Set(twins.flat().map((r) => `region ${(r.regionBytes ?? 0) / 2 ** 20} MiB, chunk ${r.chunkBytes / 2 ** 20} MiB`))].join('; ');
  const x = { field: 'method', type: 'nominal' as const, title: null, axis: { labelAngle: 0 } };
  const xOffset = { field: 'pages', type: 'nominal' as const, sort: PAGES };
  const color = { field: 'pages', type: 'nominal' as const, title: 'pages', sort: PAGES, scale: { domain: PAGES, range: ['#9aa5b1', '#d9822b'] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Huge pages against small pages (sequential read)',
      subtitle: [...provenance(runId, false, sizes), 'bar: median; rule: 95 % CI of the median; no prefetch'],
    },
    config: CONFIG,
    data: { values: pts },
    facet: { column: { field: 'panel', type: 'nominal', title: null } },
    spec: {
      width: 260,
      height: 260,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            x,
            xOffset,
            color,
            y: { field: 'median', type: 'quantitative', title: 'read throughput (MiB/s)' },
            tooltip: [
              { field: 'method' },
              { field: 'pages' },
              { field: 'median', format: '.0f' },
              { field: 'min', format: '.0f' },
              { field: 'max', format: '.0f' },
              { field: 'reps' },
            ],
          },
        },
        { mark: { type: 'rule', color: '#333' }, encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative' }, y2: { field: 'hi' } } },
      ],
    },
  };
}

export const hugePages: FigureDef = {
  name: 'huge-pages',
  caption:
    'Sequential read throughput with the region on 2 MiB huge pages (hugetlbfs) beside the same cells on small pages (median bars, rules: their 95 % bootstrap intervals). ' +
    'One huge page replaces 512 allocations and mappings per chunk; `UFFDIO_COPY` still copies every byte.',
  build,
};
