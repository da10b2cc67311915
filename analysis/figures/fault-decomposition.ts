// Stacked bars: where each strategy's median per-fault time goes (floor,
// transport, handling), with the measured median as a tick: when a strategy
// beats its own floor (noise, or a floor measured differently) the stack
// overshoots the tick and the reader sees it. The thesis never measured this.
import type { TopLevelSpec } from 'vega-lite';
import { decompose } from '../decomposition.js';
import { bytes } from '../slice.js';
import { CONFIG, HEIGHT, provenance, WIDTH } from '../spec-common.js';
import type { FigureDef, FigureInput } from './types.js';

const PARTS = ['floor (kernel mechanism alone)', 'transport (raw TCP request/response)', 'handling (the rest)'];
const TOTAL = 'measured fault p50';

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const d = decompose(rows);
  if (d.length === 0) return null;
  const bars = d.flatMap((x) => [
    { method: x.method, part: PARTS[0], order: 0, us: x.floorNs / 1e3, detail: x.floor },
    { method: x.method, part: PARTS[1], order: 1, us: x.transportNs / 1e3, detail: 'tcp' },
    { method: x.method, part: PARTS[2], order: 2, us: x.handlingNs / 1e3, detail: 'fault p50 - floor - transport, >= 0' },
  ]);
  const totals = d.map((x) => ({ method: x.method, part: TOTAL, us: x.totalNs / 1e3 }));
  const x = {
    field: 'method',
    type: 'nominal' as const,
    title: 'method (strategy, source)',
    sort: d.map((v) => v.method),
    axis: { labelAngle: -30 },
  };
  const color = {
    field: 'part',
    type: 'nominal' as const,
    title: 'part',
    scale: { domain: [...PARTS, TOTAL], range: ['#9ecae9', '#f58518', '#54a24b', '#111111'] },
  };
  const chunks = [...new Set(d.map((v) => bytes(v.chunkBytes)))].join('/');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Where a fault’s time goes (median per-fault time, ${chunks} chunks, 0 ms RTT)`,
      subtitle: [
        ...provenance(runId, false),
        'floor: floor-* rows (same CPU placement); transport: tcp rows; handling = fault p50 - floor - transport (clamped at 0)',
      ],
    },
    width: WIDTH,
    height: HEIGHT,
    config: CONFIG,
    layer: [
      {
        data: { values: bars },
        mark: { type: 'bar', width: { band: 0.6 } },
        encoding: {
          x,
          y: { field: 'us', type: 'quantitative', title: 'median per-fault time (µs)', stack: 'zero' },
          color,
          order: { field: 'order', type: 'quantitative' },
          tooltip: [{ field: 'method' }, { field: 'part' }, { field: 'detail' }, { field: 'us', format: '.2f' }],
        },
      },
      {
        data: { values: totals },
        mark: { type: 'tick', thickness: 2, size: 44 },
        encoding: {
          x,
          y: { field: 'us', type: 'quantitative', title: 'median per-fault time (µs)' },
          color,
          tooltip: [{ field: 'method' }, { field: 'us', title: 'measured fault p50 (µs)', format: '.2f' }],
        },
      },
    ],
  };
}

export const faultDecomposition: FigureDef = {
  name: 'fault-decomposition',
  caption:
    'Median per-fault time split into the floor of the mechanism (measured alone), the raw TCP transport of one chunk ' +
    '(lazy strategies with a remote source only) and the handling the strategy adds (the rest, clamped at 0); the black tick is the measured median. ' +
    'Sequential read, 0 ms RTT.',
  build,
};
