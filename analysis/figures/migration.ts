// Live migration against RTT, per destination pull strategy (uffd, sigsegv):
// total migration time (source's first push to the destination holding every
// chunk) and downtime (source stopped to the destination's first served
// access), medians with the 95 % bootstrap interval of each as a band, log y.
import type { TopLevelSpec } from 'vega-lite';
import { methodLabel } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesScales, WIDTH, type Layer } from '../spec-common.js';
import { describeParameters } from '../slice.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const MEASURES = [
  { name: 'total migration time (migration_ns)', get: (p: { migrationNs: number | null }) => p.migrationNs, dash: [1, 0], shape: 'circle' },
  { name: 'downtime (downtime_ns)', get: (p: { downtimeNs: number | null }) => p.downtimeNs, dash: [6, 4], shape: 'square' },
];

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter((r) => r.scenario === 'migrate' && r.push !== null && (r.push.migrationNs !== null || r.push.downtimeNs !== null));
  if (sel.length === 0) return null;
  const stats = [...groupBy(sel, (r) => `${methodLabel(r)}\u0000${r.rttMs}`).values()].flatMap((g) =>
    MEASURES.flatMap((m) => {
      const xs = values(g, (r) => m.get(r.push!)).filter((v) => v > 0);
      if (xs.length === 0) return [];
      const s = spread(xs.map((v) => v / 1e6));
      return [{ series: methodLabel(g[0]), measure: m.name, rtt: g[0].rttMs, median: s.median, min: s.min, max: s.max, lo: s.lo, hi: s.hi, reps: s.n }];
    }),
  );
  if (stats.length === 0) return null;
  const sc = seriesScales(stats.map((s) => s.series));
  const measures = MEASURES.filter((m) => stats.some((s) => s.measure === m.name));
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: 'destination pull strategy (source)',
    scale: { domain: sc.domain, range: sc.colours },
    legend: { titleLimit: 400 },
  };
  const strokeDash = {
    field: 'measure',
    type: 'nominal' as const,
    title: 'measure',
    scale: { domain: measures.map((m) => m.name), range: measures.map((m) => m.dash) },
  };
  const shape = {
    field: 'measure',
    type: 'nominal' as const,
    title: 'measure',
    scale: { domain: measures.map((m) => m.name), range: measures.map((m) => m.shape) },
  };
  const rtts = [...new Set(stats.map((s) => s.rtt))].sort((a, b) => a - b);
  const x = { field: 'rtt', type: 'quantitative' as const, title: 'emulated round-trip time (ms)', axis: { values: rtts } };
  const yTitle = 'time (ms, log scale)';
  const yScale = { type: 'log' as const };
  const y = { field: 'median', type: 'quantitative' as const, title: yTitle, scale: yScale };
  const trackers = [...new Set(sel.map((r) => r.push!.tracker).filter(Boolean))].join('/');
  const patterns = [...new Set(sel.map((r) => r.push!.pattern).filter(Boolean))].join('/');
  const fractions = [...new Set(sel.map((r) => r.push!.writeFraction).filter((v) => v !== null))].join('/');

  const layers: Layer[] = [
    {
      data: { values: stats },
      mark: { type: 'area', opacity: 0.15 },
      encoding: { x, y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale }, y2: { field: 'hi' }, color, detail: { field: 'measure' } },
    },
    {
      data: { values: stats },
      mark: { type: 'line', strokeWidth: 2 },
      encoding: { x, y, color, strokeDash },
    },
    {
      data: { values: stats },
      mark: { type: 'point', filled: true, size: 50, opacity: 1 },
      encoding: {
        x,
        y,
        color,
        shape,
        tooltip: [
          { field: 'series' },
          { field: 'measure' },
          { field: 'rtt' },
          { field: 'median', format: '.2f' },
          { field: 'min', format: '.2f' },
          { field: 'max', format: '.2f' },
          { field: 'lo', title: 'CI low', format: '.2f' },
          { field: 'hi', title: 'CI high', format: '.2f' },
          { field: 'reps' },
        ],
      },
    },
  ];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Live migration: total time and downtime vs RTT (migrate)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        `source tracker ${trackers || '?'}, writer pattern ${patterns || '?'}, write fraction ${fractions || '?'} per 10 ms interval`,
        'line: median (solid, circles: total; dashed, squares: downtime); band: 95 % CI of the median',
        'total = first pre-copy push to every chunk at the destination; downtime = source stopped to first served access',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: layers,
  };
}

export const migration: FigureDef = {
  name: 'migration',
  caption:
    'Live migration of a region being written, per destination pull strategy: total migration time (source’s first pre-copy push to the destination holding every chunk) ' +
    'and downtime (source stopped to the destination’s first served access) against emulated RTT; median, band: its 95 % bootstrap interval, log scale.',
  build,
};
