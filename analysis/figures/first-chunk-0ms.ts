// First-chunk latency at 0 ms RTT, one column per method: every repetition as
// a point (jittered sideways), the median as a tick, thesis values as black diamonds.
import type { TopLevelSpec } from 'vega-lite';
import { compareMethods, methodLabel, METHOD_ORDER } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, thesisPoints, WIDTH } from '../spec-common.js';
import { describeParameters, oneParameterSet } from '../slice.js';
import { bootstrapMedian } from '../stats.js';
import { thesisCategory, thesisSeries, thesisValuesFor } from '../thesis.js';
import type { FigureDef, FigureInput } from './types.js';

const NAME = 'first-chunk-0ms';

function build({ rows, thesis, runId }: FigureInput): TopLevelSpec | null {
  const sel = oneParameterSet(
    rows.filter((r) => r.scenario === 'first-chunk' && r.rttMs === 0 && METHOD_ORDER.includes(r.strategy) && r.firstAccessNs !== null),
    'largest-region',
  );
  if (sel.length === 0) return null;

  const byMethod = new Map<string, number[]>();
  for (const r of sel) {
    const m = methodLabel(r);
    byMethod.set(m, [...(byMethod.get(m) ?? []), r.firstAccessNs! / 1e3]);
  }
  // Spread repetitions evenly across the band so overlapping values stay visible.
  const points = [...byMethod].flatMap(([method, us]) =>
    us.map((v, i) => ({ method, series: method, us: v, jitter: us.length > 1 ? i / (us.length - 1) - 0.5 : 0 })),
  );
  const medians = [...byMethod].map(([method, us]) => {
    const iv = bootstrapMedian(us);
    return { method, series: method, us: iv.value, lo: iv.lo, hi: iv.hi, reps: us.length };
  });
  const ref = thesisValuesFor(thesis, NAME).map((v) => ({
    method: thesisCategory(v),
    series: thesisSeries(v),
    us: v.value / 1e3,
    published: `${v.value_as_published} ${v.unit_as_published}${v.approximate ? ' (approx.)' : ''}`,
  }));

  const categories = [...new Set([...byMethod.keys(), ...ref.map((r) => r.method)])].sort(compareMethods);
  const series = [...points.map((p) => p.series), ...ref.map((r) => r.series)];
  const x = {
    field: 'method',
    type: 'nominal' as const,
    title: 'method (strategy, source)',
    scale: { domain: categories },
    axis: { labelAngle: -30 },
  };
  const y = {
    field: 'us',
    type: 'quantitative' as const,
    title: 'first-chunk latency (µs, log scale)',
    scale: { type: 'log' as const },
  };

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'First-chunk latency at 0 ms RTT',
      subtitle: [
        ...provenance(runId, ref.length > 0, describeParameters(sel)),
        'points: repetitions; tick: median; black rule: 95 % CI of the median (bootstrap)',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values: points },
        mark: { type: 'point', filled: true, opacity: 0.55, size: 30 },
        encoding: {
          x,
          xOffset: { field: 'jitter', type: 'quantitative', scale: { domain: [-1, 1] } },
          y,
          ...seriesEncoding(series, true),
          tooltip: [{ field: 'method' }, { field: 'us', title: 'µs', format: '.2f' }],
        },
      },
      {
        data: { values: medians },
        mark: { type: 'tick', thickness: 3, size: 34 },
        encoding: {
          x,
          y,
          ...seriesEncoding(series, false),
          tooltip: [
            { field: 'method' },
            { field: 'us', title: 'median µs', format: '.2f' },
            { field: 'lo', format: '.2f' },
            { field: 'hi', format: '.2f' },
            { field: 'reps' },
          ],
        },
      },
      {
        data: { values: medians },
        mark: { type: 'rule', strokeWidth: 3, color: '#111' },
        encoding: { x, y: { field: 'lo', type: 'quantitative', title: y.title, scale: y.scale }, y2: { field: 'hi' } },
      },
      ...thesisPoints(ref, x, y, series),
    ],
  };
}

export const firstChunk0ms: FigureDef = {
  name: NAME,
  caption:
    'First-chunk latency at 0 ms RTT: one point per repetition, a tick at the median and a black rule over its 95 % bootstrap interval, log scale. ' +
    'Black diamonds: the thesis (0 ms there meant an in-process backend, so userfaultfd sits on uffd (local)).',
  build,
};
