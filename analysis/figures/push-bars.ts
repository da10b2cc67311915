// Shared by the write-track figures (write-slowdown, push-per-interval): one
// group of bars per tracker, one bar per write pattern (and region/source when
// the run has more than one), a rule from the smallest to the largest value.
import { compareTrackers, comparePatterns } from '../push.js';
import type { RunRow } from '../runs.js';
import { bytes } from '../slice.js';
import { groupBy, spread } from '../stats.js';

/** ok write-track rows with their push fields. */
export function writeTrackRows(rows: RunRow[]): RunRow[] {
  return rows.filter((r) => r.scenario === 'write-track' && r.push !== null);
}

const PATTERN_COLOURS = ['#4c78a8', '#f58518', '#e45756', '#72b7b2', '#54a24b', '#b279a2', '#9d755d', '#bab0ac', '#eeca3b'];

export interface BarSeries {
  /** Legend label: the CSV's pattern, plus region and source when the rows have several. */
  label: (r: RunRow) => string;
  domain: string[];
  colours: string[];
  /** Legend title. */
  title: string;
}

/** Series = pattern, or "pattern (region, source)" when the rows mix regions or sources. */
export function patternSeries(rows: RunRow[]): BarSeries {
  const setup = (r: RunRow) => `${r.regionBytes === null ? '?' : bytes(r.regionBytes)}, ${r.source}`;
  const mixed = new Set(rows.map(setup)).size > 1;
  const label = (r: RunRow) => (mixed ? `${r.push!.pattern} (${setup(r)})` : r.push!.pattern);
  const order = [...new Map(rows.map((r) => [label(r), r])).values()].sort(
    (a, b) => comparePatterns(a.push!.pattern, b.push!.pattern) || (a.regionBytes ?? 0) - (b.regionBytes ?? 0) || a.source.localeCompare(b.source),
  );
  const domain = order.map(label);
  return {
    label,
    domain,
    colours: domain.map((_, i) => PATTERN_COLOURS[i % PATTERN_COLOURS.length]),
    title: mixed ? 'pattern (region, source)' : 'pattern',
  };
}

export interface BarDatum {
  tracker: string;
  series: string;
  median: number;
  min: number;
  max: number;
  /** The median's 95 % bootstrap interval (stats.ts; over the pooled values, so per interval it is narrower than per run). */
  lo: number;
  hi: number;
  /** Number of values behind the median (repetitions, or intervals x repetitions). */
  n: number;
  reps: number;
  rtts: string;
}

/** Median/min/max per (tracker, series) of the values a row contributes (positive values only: the axes are log). */
export function barData(rows: RunRow[], series: BarSeries, valuesOf: (r: RunRow) => number[]): BarDatum[] {
  const out: BarDatum[] = [];
  for (const g of groupBy(rows, (r) => `${r.strategy}\u0000${series.label(r)}`).values()) {
    const xs = g.flatMap(valuesOf).filter((v) => Number.isFinite(v) && v > 0);
    if (xs.length === 0) continue;
    const s = spread(xs);
    const rtts = [...new Set(g.map((r) => r.rttMs))].sort((a, b) => a - b).join(', ');
    out.push({
      tracker: g[0].strategy,
      series: series.label(g[0]),
      median: s.median,
      min: s.min,
      max: s.max,
      lo: s.lo,
      hi: s.hi,
      n: s.n,
      reps: g.length,
      rtts,
    });
  }
  return out;
}

export const trackerDomain = (data: { tracker: string }[]) => [...new Set(data.map((d) => d.tracker))].sort(compareTrackers);

/** x, xOffset and colour channels of a grouped bar chart. */
export function barChannels(trackers: string[], series: BarSeries, showLabels = true) {
  return {
    x: {
      field: 'tracker',
      type: 'nominal' as const,
      title: showLabels ? 'tracker (CSV column strategy)' : null,
      scale: { domain: trackers, paddingInner: 0.25 },
      axis: showLabels ? { labelAngle: 0 } : { labels: false, ticks: false },
    },
    xOffset: { field: 'series', type: 'nominal' as const, scale: { domain: series.domain } },
    color: {
      field: 'series',
      type: 'nominal' as const,
      title: series.title,
      scale: { domain: series.domain, range: series.colours },
      legend: { titleLimit: 400 },
    },
  };
}

/** "RTT 0 ms" or "RTTs 0 and 2 ms pooled". */
export function rttNote(rows: RunRow[]): string {
  const rtts = [...new Set(rows.map((r) => r.rttMs))].sort((a, b) => a - b);
  if (rtts.length <= 1) return `RTT ${rtts[0] ?? 0} ms`;
  return `RTTs ${rtts.slice(0, -1).join(', ')} and ${rtts[rtts.length - 1]} ms pooled`;
}
