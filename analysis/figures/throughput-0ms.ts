// Sequential read throughput at 0 ms RTT: a bar at the median, a rule from the
// slowest to the fastest repetition, thesis values as black diamonds. Log scale
// because memory and lazy pulling differ by orders of magnitude.
import type { TopLevelSpec } from 'vega-lite';
import { compareMethods, methodLabel, METHOD_ORDER } from '../runs.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, thesisPoints, WIDTH } from '../spec-common.js';
import { describeParameters, oneParameterSet } from '../slice.js';
import { groupBy, spread, values } from '../stats.js';
import { thesisCategory, thesisSeries, thesisValuesFor } from '../thesis.js';
import type { FigureDef, FigureInput } from './types.js';

const NAME = 'throughput-0ms';

function build({ rows, thesis, runId }: FigureInput): TopLevelSpec | null {
  const sel = oneParameterSet(
    rows.filter((r) => r.scenario === 'read-seq' && r.rttMs === 0 && METHOD_ORDER.includes(r.strategy) && r.throughputMibps !== null),
    'largest-region',
  );
  if (sel.length === 0) return null;
  const bars = [...groupBy(sel, methodLabel)].map(([method, g]) => {
    const s = spread(values(g, (r) => r.throughputMibps));
    return { method, series: method, median: s.median, min: s.min, max: s.max, lo: s.lo, hi: s.hi, reps: s.n };
  });
  const ref = thesisValuesFor(thesis, NAME).map((v) => ({
    method: thesisCategory(v),
    series: thesisSeries(v),
    mibps: v.value,
    published: `${v.value_as_published} ${v.unit_as_published}${v.approximate ? ' (approx.)' : ''} = ${v.value} MiB/s`,
  }));
  const categories = [...new Set([...bars.map((b) => b.method), ...ref.map((r) => r.method)])].sort(compareMethods);
  const series = [...bars.map((b) => b.series), ...ref.map((r) => r.series)];
  const x = {
    field: 'method',
    type: 'nominal' as const,
    title: 'method (strategy, source)',
    scale: { domain: categories },
    axis: { labelAngle: -30 },
  };
  const yTitle = 'read throughput (MiB/s, log scale)';
  const yScale = { type: 'log' as const };

  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: 'Read throughput at 0 ms RTT (sequential)',
      subtitle: [
        ...provenance(runId, ref.length > 0, describeParameters(sel)),
        'bar: median; rule: 95 % CI of the median; thesis MB/s = MiB/s (see thesis-reference.json)',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', opacity: 0.85, width: { band: 0.6 } },
        encoding: {
          x,
          // No stacking: a colour per bar would otherwise stack them from 0, which a log scale cannot show.
          y: { field: 'median', type: 'quantitative', title: yTitle, scale: yScale, stack: null },
          ...seriesEncoding(series, false),
          tooltip: [
            { field: 'method' },
            { field: 'median', format: '.1f' },
            { field: 'min' },
            { field: 'max' },
            { field: 'lo', title: 'CI low' },
            { field: 'hi', title: 'CI high' },
            { field: 'reps' },
          ],
        },
      },
      {
        data: { values: bars },
        mark: { type: 'rule', strokeWidth: 2, color: '#333' },
        encoding: { x, y: { field: 'lo', type: 'quantitative', title: yTitle, scale: yScale }, y2: { field: 'hi' } },
      },
      ...thesisPoints(ref, x, { field: 'mibps', type: 'quantitative', title: yTitle, scale: yScale }, series),
    ],
  };
}

export const throughput0ms: FigureDef = {
  name: NAME,
  caption:
    'Sequential read throughput at 0 ms RTT (bar: median, rule: its 95 % bootstrap interval, log scale, MiB = 2^20 bytes). ' +
    'Black diamonds: the thesis (two runs for userfaultfd, 450 and about 580 MB/s); its MB/s are bytes/2^20/s as its benchmark printed them, its GB/s read as 1000 of those.',
  build,
};
