// What a tracker makes the pusher send: (a) bytes pushed per sync interval,
// with the dirty chunks collected per interval on the right-hand axis (the
// same bars: a pushed interval is its dirty chunks x the chunk size), and
// (b) write amplification, bytes pushed / bytes written.
import type { TopLevelSpec } from 'vega-lite';
import { CONFIG, provenance, WIDTH, type Layer } from '../spec-common.js';
import { bytes, describeParameters } from '../slice.js';
import { barChannels, barData, patternSeries, rttNote, trackerDomain, writeTrackRows } from './push-bars.js';
import type { FigureDef, FigureInput } from './types.js';

const MIB = 2 ** 20;
const decadeBelow = (v: number) => 10 ** Math.floor(Math.log10(v));
const decadeAbove = (v: number) => 10 ** Math.ceil(Math.log10(v));

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = writeTrackRows(rows).filter((r) => r.push!.dirtyChunks !== null || r.push!.writeAmplification !== null);
  if (sel.length === 0) return null;
  const series = patternSeries(sel);
  // Bytes pushed in each interval = its dirty chunks x chunk size (every push is whole chunks).
  const pushed = barData(sel, series, (r) => (r.push!.dirtyChunks ?? []).map((c) => (c * r.chunkBytes) / MIB));
  const amp = barData(sel, series, (r) => (r.push!.writeAmplification === null ? [] : [r.push!.writeAmplification]));
  if (pushed.length === 0 && amp.length === 0) return null;
  const trackers = trackerDomain([...pushed, ...amp]);
  const top = barChannels(trackers, series, false);
  const bottom = barChannels(trackers, series, true);
  const chunks = [...new Set(sel.map((r) => r.chunkBytes))];

  const tooltip = (valueTitle: string, format: string) => [
    { field: 'tracker' },
    { field: 'series', title: series.title },
    { field: 'median', title: valueTitle, format },
    { field: 'min', format },
    { field: 'max', format },
    { field: 'n', title: 'values (intervals x reps)' },
    { field: 'rtts', title: 'RTT (ms)' },
  ];

  const panels = [];
  if (pushed.length) {
    const yTitle = 'MiB pushed / interval';
    // Fixed log domains so the right-hand axis (dirty chunks) lines up with the left one exactly.
    const lo = decadeBelow(Math.min(...pushed.map((d) => d.min)));
    const hi = decadeAbove(Math.max(...pushed.map((d) => d.max)) * 1.0001);
    const yScale = { type: 'log' as const, domain: [lo, hi], nice: false };
    const bars: Layer[] = [
      {
        data: { values: pushed },
        mark: { type: 'bar', opacity: 0.85 },
        encoding: {
          ...top,
          y: { field: 'median', type: 'quantitative', title: yTitle, scale: yScale, stack: null },
          tooltip: tooltip('MiB per interval (median)', '.3f'),
        },
      },
      {
        data: { values: pushed },
        mark: { type: 'rule', strokeWidth: 1.5, color: '#333' },
        encoding: { x: top.x, xOffset: top.xOffset, y: { field: 'min', type: 'quantitative', title: yTitle, scale: yScale }, y2: { field: 'max' } },
      },
    ];
    // The bars and their rules share one scale; the axis-only layer gets its own (resolve: independent).
    const layers: Layer[] = [{ layer: bars } as Layer];
    if (chunks.length === 1) {
      // An invisible layer that only carries the right-hand axis: dirty chunks = MiB x 2^20 / chunk.
      const perMib = MIB / chunks[0];
      layers.push({
        data: { values: pushed.map((d) => ({ ...d, chunks: d.median * perMib })) },
        mark: { type: 'point', opacity: 0 },
        encoding: {
          x: top.x,
          xOffset: top.xOffset,
          y: {
            field: 'chunks',
            type: 'quantitative',
            title: `dirty ${bytes(chunks[0])} chunks / interval`,
            scale: { type: 'log', domain: [lo * perMib, hi * perMib], nice: false },
            axis: { orient: 'right', grid: false },
          },
        },
      });
    }
    panels.push({
      title: { text: '(a) pushed per interval: MiB (left) = chunks (right)', fontSize: 12 },
      width: WIDTH,
      height: 260,
      layer: layers,
      ...(chunks.length === 1 ? { resolve: { scale: { y: 'independent' as const } } } : {}),
    });
  }
  if (amp.length) {
    const yTitle = 'write amplification (×)';
    const yScale = { type: 'log' as const };
    panels.push({
      title: { text: '(b) bytes_pushed / bytes_written', fontSize: 12 },
      width: WIDTH,
      height: 230,
      layer: [
        {
          data: { values: amp },
          mark: { type: 'bar' as const, opacity: 0.85 },
          encoding: {
            ...bottom,
            y: { field: 'median', type: 'quantitative' as const, title: yTitle, scale: yScale, stack: null },
            tooltip: tooltip('amplification (median, ×)', '.3f'),
          },
        },
        {
          data: { values: amp },
          mark: { type: 'rule' as const, strokeWidth: 1.5, color: '#333' },
          encoding: {
            x: bottom.x,
            xOffset: bottom.xOffset,
            y: { field: 'min', type: 'quantitative' as const, title: yTitle, scale: yScale },
            y2: { field: 'max' },
          },
        },
        {
          data: { values: [{ one: 1 }] },
          mark: { type: 'rule' as const, strokeDash: [5, 4], color: '#555' },
          encoding: { y: { field: 'one', type: 'quantitative' as const, title: yTitle, scale: yScale } },
        },
      ],
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    // Per-interval values of one repetition are not independent draws, so no bootstrap interval: rules are min..max.
    usermeta: { intervals: false },
    title: {
      text: 'What each tracker pushes per sync interval (write-track)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        `bar: median over intervals and repetitions (${rttNote(sel)}); rule: min..max`,
        '(b) dashed line: 1× = every written byte pushed once; below 1×: a chunk written',
        'twice in an interval is pushed once; none pushes every chunk each interval',
      ],
    },
    config: CONFIG,
    spacing: 24,
    vconcat: panels,
  } as TopLevelSpec;
}

export const pushPerInterval: FigureDef = {
  name: 'push-per-interval',
  caption:
    'What each tracker makes the pusher send: (a) bytes pushed per sync interval (left axis) and the dirty chunks collected per interval (right axis, the same bars), ' +
    'median over intervals and repetitions, rule min..max; (b) write amplification, bytes_pushed / bytes_written (median, min..max over repetitions). Log scales.',
  build,
};
