// Write slowdown per tracker: the median tracked write over the median of the
// same writes on an untracked mapping, measured in the same call
// (write_ns_p50 / write_untracked_ns_p50), one bar per write pattern, log
// scale. The answer to the thesis's claim that userfaultfd "does not allow
// for tracking changes" starts with what tracking costs the writer.
import type { TopLevelSpec } from 'vega-lite';
import { medianWriteSlowdown } from '../push.js';
import { CONFIG, HEIGHT, provenance, WIDTH } from '../spec-common.js';
import { describeParameters } from '../slice.js';
import { median, values } from '../stats.js';
import { barChannels, barData, patternSeries, rttNote, trackerDomain, writeTrackRows } from './push-bars.js';
import type { FigureDef, FigureInput } from './types.js';

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = writeTrackRows(rows).filter((r) => medianWriteSlowdown(r.push!) !== null);
  if (sel.length === 0) return null;
  const series = patternSeries(sel);
  const bars = barData(sel, series, (r) => [medianWriteSlowdown(r.push!)!]).map((b) => {
    // Per-write times of the same rows, for the tooltip (ns -> µs).
    const group = sel.filter((r) => r.strategy === b.tracker && series.label(r) === b.series);
    const us = (f: (r: (typeof sel)[number]) => number | null) => {
      const xs = values(group, f);
      return xs.length ? median(xs) / 1e3 : null;
    };
    return {
      ...b,
      tracked_us: us((r) => r.push!.writeNsP50),
      untracked_us: us((r) => r.push!.writeUntrackedNsP50),
      overhead_us: us((r) => r.push!.writeOverheadNs),
    };
  });
  if (bars.length === 0) return null;
  const { x, xOffset, color } = barChannels(trackerDomain(bars), series);
  const yTitle = 'write slowdown (×, log scale)';
  const yScale = { type: 'log' as const };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Write slowdown per tracker (write-track)',
      subtitle: [
        ...provenance(runId, false, describeParameters(sel)),
        'slowdown = write_ns_p50 / write_untracked_ns_p50: median tracked write over the median of the same writes',
        'on an untracked mapping in the same call; dashed line: 1× (no slowdown)',
        `bar: median over repetitions (${rttNote(sel)}: writes are timed between pushes); rule: 95 % CI of the median`,
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', opacity: 0.85 },
        encoding: {
          x,
          xOffset,
          y: { field: 'median', type: 'quantitative', title: yTitle, scale: yScale, stack: null },
          color,
          tooltip: [
            { field: 'tracker' },
            { field: 'series', title: series.title },
            { field: 'median', title: 'slowdown (median, ×)', format: '.2f' },
            { field: 'min', format: '.2f' },
            { field: 'max', format: '.2f' },
            { field: 'lo', title: 'CI low', format: '.2f' },
            { field: 'hi', title: 'CI high', format: '.2f' },
            { field: 'tracked_us', title: 'write_ns_p50 (median, µs)', format: '.2f' },
            { field: 'untracked_us', title: 'write_untracked_ns_p50 (median, µs)', format: '.2f' },
            { field: 'overhead_us', title: 'write_overhead_ns (median, µs)', format: '.2f' },
            { field: 'reps' },
            { field: 'rtts', title: 'RTT (ms)' },
          ],
        },
      },
      {
        data: { values: bars },
        mark: { type: 'rule', strokeWidth: 1.5, color: '#333' },
        encoding: { x, xOffset, y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale }, y2: { field: 'hi' } },
      },
      {
        data: { values: [{ one: 1 }] },
        mark: { type: 'rule', strokeDash: [5, 4], color: '#555' },
        encoding: { y: { field: 'one', type: 'quantitative', title: yTitle, scale: yScale } },
      },
    ],
  };
}

export const writeSlowdown: FigureDef = {
  name: 'write-slowdown',
  caption:
    'Write slowdown per tracker: the median tracked write over the median of the same writes on an untracked mapping of the same kind, ' +
    'measured in the same call (write_ns_p50 / write_untracked_ns_p50; bar: median over repetitions, rule: its 95 % bootstrap interval, log scale). ' +
    'Medians, because a single preemption of a few ms moves the summed write times (column write_slowdown) on a shared machine. ' +
    'Trackers: uffd-wp (userfaultfd write-protect, handler thread), uffd-wp-async (WP_ASYNC + PAGEMAP_SCAN), mprotect (SIGSEGV), none (no tracking, pushes every chunk).',
  build,
};
