// Pieces every figure shares: the font and sizes, one colour per method across
// all figures, and the look of thesis overlay points.
import type { Config, TopLevelSpec } from 'vega-lite';

/** Legend properties as vega-lite accepts them on a channel. */
type LegendOptions = { symbolType?: string; symbolStrokeWidth?: number; symbolSize?: number };
import { compareMethods } from './runs.js';

/** One layer of a layered spec, derived from vega-lite's own types. */
export type Layer = Extract<TopLevelSpec, { layer: unknown }>['layer'][number];
type Encoding = NonNullable<Extract<Layer, { mark: unknown }>['encoding']>;

export const FONT = 'DejaVu Sans';

/**
 * Vega measures text without a canvas here (it estimates 0.8 em per character,
 * wider than DejaVu Sans), so limits are generous: labels must never be cut.
 */
export const CONFIG: Config = {
  font: FONT,
  background: 'white',
  padding: 12,
  view: { stroke: '#ccc' },
  title: { fontSize: 15, anchor: 'start', offset: 10, subtitleFontSize: 11, subtitleColor: '#555' },
  axis: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400, titlePadding: 8, gridColor: '#eee' },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 400, symbolSize: 90, symbolOpacity: 1 },
};

export const WIDTH = 520;
export const HEIGHT = 300;

/** Fixed colours so "uffd (remote)" is the same red in every figure. */
const METHOD_COLOURS: Record<string, string> = {
  memory: '#4c78a8',
  disk: '#72b7b2',
  'eager (local)': '#b279a2',
  'eager (remote)': '#7b3f8c',
  'uffd (local)': '#f58518',
  'uffd (remote)': '#c0392b',
  'sigsegv (local)': '#54a24b',
  'sigsegv (remote)': '#1b6e3a',
};
const SPARE_COLOURS = ['#9d755d', '#ff9da6', '#bab0ac', '#eeca3b', '#439894', '#d67195'];
export const THESIS_COLOUR = '#111111';

export function isThesisSeries(s: string): boolean {
  return s.startsWith('thesis: ');
}

/** Colour and shape scales for a "series" field shared by all layers (one merged legend). */
export function seriesScales(series: string[]): {
  domain: string[];
  colours: string[];
  shapes: string[];
} {
  const ours = [...new Set(series.filter((s) => !isThesisSeries(s)))].sort(compareMethods);
  const thesis = [...new Set(series.filter(isThesisSeries))]; // reference-file order
  let spare = 0;
  const colours = ours.map((s) => METHOD_COLOURS[s] ?? SPARE_COLOURS[spare++ % SPARE_COLOURS.length]);
  const shapes = ours.map(() => 'circle');
  for (const t of thesis) {
    colours.push(THESIS_COLOUR);
    // A bound is drawn as a triangle pointing the way the thesis says the value lies.
    shapes.push(t.includes('(upper bound)') ? 'triangle-down' : t.includes('(lower bound)') ? 'triangle-up' : 'diamond');
  }
  return { domain: [...ours, ...thesis], colours, shapes };
}

/** The encoding channels for the series legend; `withShape` only on point layers (lines have no shape). */
export function seriesEncoding(series: string[], withShape: boolean, legend?: LegendOptions) {
  const s = seriesScales(series);
  const color = {
    field: 'series',
    type: 'nominal' as const,
    title: 'method',
    scale: { domain: s.domain, range: s.colours },
    ...(legend ? { legend } : {}),
  };
  const shape = {
    field: 'series',
    type: 'nominal' as const,
    title: 'method',
    scale: { domain: s.domain, range: s.shapes },
  };
  return withShape ? { color, shape } : { color };
}

/** Joins run ids when a figure's rows come from several runs (`--in` given more than once). */
export const RUNS_SEPARATOR = ' + ';

/** The subtitle every figure carries: where its data came from (runId may name several runs, joined by RUNS_SEPARATOR). */
export function provenance(runId: string | undefined, thesisShown: boolean, params?: string): string[] {
  const where = runId
    ? runId
        .split(RUNS_SEPARATOR)
        .map((id) => `results/${id}`)
        .join(RUNS_SEPARATOR)
    : 'runs.csv';
  const lines = [`data: ${where}, status=ok rows${params ? `; ${params}` : ''}`];
  if (thesisShown) lines.push('black symbols: thesis values (i7-1280P, Linux 6.3.11); approximate where read off a figure');
  return lines;
}

type Field = { field: string; type: 'quantitative'; title: string; scale: { type: 'log'; base?: number }; axis?: { values?: number[]; format?: string } };

/** The design-space figures' frame: one panel per value of `values[].panel` (or
 * `panelField`), a line and points per series through the medians of the
 * repetitions, and an error bar per point over the median's 95 % bootstrap
 * interval (fields lo, hi). */
export function panelledLines(o: {
  title: string;
  subtitle: string[];
  values: { series: string; lo: number; hi: number; reps: number }[];
  panelField?: string;
  panelSort?: string[];
  x: Field;
  y: Field;
  tooltip: { field: string; format?: string }[];
}): TopLevelSpec {
  const series = o.values.map((p) => p.series);
  const { x, y } = o;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: o.title,
      subtitle: [...o.subtitle, 'points: medians over repetitions; error bars: 95 % CI of the median (bootstrap; often within the point)'],
    },
    config: CONFIG,
    data: { values: o.values },
    facet: { column: { field: o.panelField ?? 'panel', type: 'nominal', title: null, ...(o.panelSort ? { sort: o.panelSort } : {}) } },
    spec: {
      width: 230,
      height: 260,
      layer: [
        { mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, ...seriesEncoding(series, false) } },
        {
          mark: { type: 'rule', strokeWidth: 1.5, opacity: 0.8 },
          encoding: { x, y: { ...y, field: 'lo' }, y2: { field: 'hi' }, ...seriesEncoding(series, false) },
        },
        { mark: { type: 'point', filled: true, size: 40 }, encoding: { x, y, ...seriesEncoding(series, true), tooltip: o.tooltip } },
      ],
    },
  };
}

/** The thesis's values as large points in the thesis colour and bound shapes,
 * drawn over our own layers; none when the figure has no thesis values. */
export function thesisPoints(values: { series: string; published: string }[], x: Encoding['x'], y: Encoding['y'], series: string[]): Layer[] {
  if (!values.length) return [];
  return [
    {
      data: { values },
      mark: { type: 'point', filled: true, size: 130, opacity: 1 },
      encoding: { x, y, ...seriesEncoding(series, true), tooltip: [{ field: 'series' }, { field: 'published' }] },
    },
  ];
}
