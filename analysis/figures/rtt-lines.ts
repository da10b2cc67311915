// Shared builder of the "<measure> vs RTT" figures: one line per remote method
// through the medians, the medians' 95 % bootstrap intervals as a band, thesis values on top.
import type { TopLevelSpec } from 'vega-lite';
import { methodLabel, type RunRow } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, thesisPoints, WIDTH, type Layer } from '../spec-common.js';
import { describeParameters, oneParameterSet } from '../slice.js';
import { groupBy, spread, values } from '../stats.js';
import { thesisSeries, type ThesisValue } from '../thesis.js';

export interface RttLinesOptions {
  rows: RunRow[];
  runId?: string;
  title: string;
  yTitle: string;
  logY: boolean;
  /** The plotted value of a row in the y unit, or null when the row has none. */
  value: (r: RunRow) => number | null;
  thesis: ThesisValue[];
  /** Converts a thesis value (ns or MiB/s) into the y unit. */
  thesisValue: (v: ThesisValue) => number;
}

export function rttLines(o: RttLinesOptions): TopLevelSpec | null {
  // Only remote sources have a network, so only they vary with RTT.
  const sel = oneParameterSet(
    o.rows.filter((r) => r.source === 'remote' && o.value(r) !== null),
    'widest-rtt-sweep',
  );
  if (sel.length === 0) return null;
  const stats = [...groupBy(sel, (r) => `${methodLabel(r)}\u0000${r.rttMs}`).values()].map((g) => {
    const s = spread(values(g, o.value));
    return { series: methodLabel(g[0]), rtt: g[0].rttMs, median: s.median, min: s.min, max: s.max, lo: s.lo, hi: s.hi, reps: s.n };
  });
  const ref = o.thesis.map((v) => ({
    series: thesisSeries(v),
    rtt: v.rtt_ms ?? 0,
    rtt_to: v.rtt_ms_to ?? v.rtt_ms ?? 0,
    y: o.thesisValue(v),
    published: `${v.bound === 'upper' ? '< ' : v.bound === 'lower' ? '> ' : ''}${v.value_as_published} ${v.unit_as_published}${v.approximate ? ' (approx.)' : ''}`,
  }));
  const series = [...stats.map((s) => s.series), ...ref.map((r) => r.series)];
  const x = { field: 'rtt', type: 'quantitative' as const, title: 'emulated round-trip time (ms)' };
  const yScale = o.logY ? { type: 'log' as const } : { zero: true };
  const y = { field: 'median', type: 'quantitative' as const, title: o.yTitle, scale: yScale };

  const layers: Layer[] = [
    {
      data: { values: stats },
      mark: { type: 'area', opacity: 0.18 },
      encoding: { x, y: { field: 'lo', type: 'quantitative', title: o.yTitle, scale: yScale }, y2: { field: 'hi' }, ...seriesEncoding(series, false) },
    },
    {
      data: { values: stats },
      mark: { type: 'line', strokeWidth: 2 },
      encoding: { x, y, ...seriesEncoding(series, false) },
    },
    {
      data: { values: stats },
      mark: { type: 'point', filled: true, size: 40 },
      encoding: {
        x,
        y,
        ...seriesEncoding(series, true),
        tooltip: [
          { field: 'series' },
          { field: 'rtt' },
          { field: 'median' },
          { field: 'min' },
          { field: 'max' },
          { field: 'lo', title: 'CI low' },
          { field: 'hi', title: 'CI high' },
          { field: 'reps' },
        ],
      },
    },
  ];
  if (ref.length) {
    // A claim over an RTT range ("below 1 MB/s from 6 ms") is a dashed segment.
    const ranges = ref.filter((r) => r.rtt_to > r.rtt);
    if (ranges.length)
      layers.push({
        data: { values: ranges },
        mark: { type: 'rule', strokeDash: [5, 4], strokeWidth: 1.5 },
        encoding: { x, x2: { field: 'rtt_to' }, y: { field: 'y', type: 'quantitative', title: o.yTitle, scale: yScale }, ...seriesEncoding(series, false) },
      });
    layers.push(...thesisPoints(ref, x, { field: 'y', type: 'quantitative', title: o.yTitle, scale: yScale }, series));
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: o.title, subtitle: [...provenance(o.runId, ref.length > 0, describeParameters(sel)), 'band: 95 % CI of the median'] },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: layers,
  };
}
