// Live migration against RTT, per destination pull strategy (uffd, sigsegv)
// and mode (pre-copy, post-copy, hybrid): total migration time (source's first
// push to the destination holding every chunk) and downtime (source stopped to
// the destination's first served access), medians with the 95 % bootstrap interval
// of each as a band, log y, with QEMU's default downtime limit (300 ms) as a rule.
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

/** QEMU's default downtime-limit (migrate_set_parameter downtime-limit), the line the downtimes are read against. */
export const QEMU_DOWNTIME_LIMIT_MS = 300;

/** A line per pull strategy, mode and destination pull policy (when several appear). */
function seriesOf(r: FigureInput['rows'][number]): string {
  const p = r.push!;
  return `${methodLabel(r)}, ${p.migrateMode}, pull ${p.destPrefetch}`;
}

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const all = rows.filter((r) => r.scenario === 'migrate' && r.push !== null && (r.push.migrationNs !== null || r.push.downtimeNs !== null));
  // Streamed migrations (rows with a stop reason) supersede the serial pushes of
  // older runs: drawn together they would share colours and crowd the log axis.
  const streamed = all.filter((r) => r.push!.stopReason);
  const sel = streamed.length ? streamed : all;
  if (sel.length === 0) return null;
  const stats = [...groupBy(sel, (r) => `${seriesOf(r)}\u0000${r.rttMs}`).values()].flatMap((g) =>
    MEASURES.flatMap((m) => {
      const xs = values(g, (r) => m.get(r.push!)).filter((v) => v > 0);
      if (xs.length === 0) return [];
      const s = spread(xs.map((v) => v / 1e6));
      return [{ series: seriesOf(g[0]), measure: m.name, rtt: g[0].rttMs, median: s.median, min: s.min, max: s.max, lo: s.lo, hi: s.hi, reps: s.n }];
    }),
  );
  if (stats.length === 0) return null;
  const sc = seriesScales(stats.map((s) => s.series));
  const measures = MEASURES.filter((m) => stats.some((s) => s.measure === m.name));
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: 'destination pull strategy (source), mode, pull policy',
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
      data: { values: [{ limit: QEMU_DOWNTIME_LIMIT_MS, label: `QEMU's default downtime limit (${QEMU_DOWNTIME_LIMIT_MS} ms)` }] },
      mark: { type: 'rule', color: '#888', strokeDash: [2, 2] },
      encoding: { y: { field: 'limit', type: 'quantitative', scale: yScale } },
    },
    {
      data: { values: [{ limit: QEMU_DOWNTIME_LIMIT_MS, label: `QEMU's default downtime limit (${QEMU_DOWNTIME_LIMIT_MS} ms)` }] },
      mark: { type: 'text', align: 'left', baseline: 'bottom', dx: 4, dy: -2, color: '#666', fontSize: 10 },
      encoding: { y: { field: 'limit', type: 'quantitative', scale: yScale }, x: { value: 0 }, text: { field: 'label' } },
    },
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
      text: 'Live migration: total time and downtime vs RTT, per mode (migrate)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        `source tracker ${trackers || '?'}, writer pattern ${patterns || '?'}, write fraction ${fractions || '?'} per 10 ms interval`,
        'line: median (solid, circles: total; dashed, squares: downtime); band: 95 % CI of the median',
        'total = source started to every chunk at the destination; downtime = source stopped to first served access; dotted rule: QEMU\u2019s default downtime limit',
        'pre-copy: pipelined rounds until the rest fits the downtime limit, then stop and copy; post-copy: stop at once, the destination pulls from the source; hybrid: post-copy after N rounds',
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
    'Live migration of a region being written, per destination pull strategy and mode (pre-copy, post-copy, hybrid): total migration time (source started to the destination holding every chunk) ' +
    'and downtime (source stopped to the destination’s first served access) against emulated RTT; median, band: its 95 % bootstrap interval, log scale; dotted: QEMU’s default 300 ms downtime limit.',
  build,
};
