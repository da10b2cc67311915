// uffd's handler in a process of its own against handler threads (issue 19,
// matrix `handler`): the thesis measured its uffd figures with the handler in a
// separate process, faultlab's main runs with a thread. Per-fault cost
// (read-seq, the application's median fault) and first-chunk latency, cell by
// cell: a condition is drawn only where the run has both handlers, so each
// pair of dots differs in where the handler runs alone; sigsegv (whose handler
// runs on the faulting thread) beside them for reference.
import type { TopLevelSpec } from 'vega-lite';
import type { RunRow } from '../runs.js';
import { CONFIG, provenance } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import type { FigureDef, FigureInput } from './types.js';

const METHODS = ['uffd, handler thread', 'uffd, handler process', 'sigsegv (reference)'];
const method = (r: RunRow) => (r.strategy === 'sigsegv' ? METHODS[2] : r.designSpace?.handler === 'process' ? METHODS[1] : METHODS[0]);
const condition = (r: RunRow) => (r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local source');
const MEASURES = ['per-fault cost, read-seq (µs, median fault)', 'first-chunk latency (µs)'];

/** Rows in the thesis's set-up apart from the handler: one application thread, no prefetch, small pages. */
const plain = (r: RunRow) =>
  (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
  (r.designSpace?.prefetch ?? 'none') === 'none' &&
  (r.designSpace?.appThreads ?? 1) === 1 &&
  (r.designSpace?.uffdInstall ?? 'copy') !== 'move' &&
  (r.designSpace?.huge ?? 'none') === 'none';

function points(rows: RunRow[], measure: string, value: (r: RunRow) => number | null) {
  const same = rows.filter((r) => r.cpus === 'same');
  // Only conditions where both handlers ran, so each pair differs in the handler alone.
  const both = new Set(
    [
      ...groupBy(
        same.filter((r) => r.strategy === 'uffd'),
        condition,
      ).entries(),
    ]
      .filter(([, g]) => new Set(g.map(method)).size === 2)
      .map(([c]) => c),
  );
  return [
    ...groupBy(
      same.filter((r) => both.has(condition(r))),
      (r) => `${condition(r)}\u0000${method(r)}`,
    ).values(),
  ]
    .map((g) => {
      const s = spread(values(g, value));
      return { measure, condition: condition(g[0]), method: method(g[0]), median: s.median, min: s.min, max: s.max, reps: s.n };
    })
    .filter((p) => p.reps > 0);
}

function build({ rows, runId }: FigureInput): TopLevelSpec | null {
  const sel = rows.filter(plain);
  if (!sel.some((r) => r.designSpace?.handler === 'process')) return null;
  const pts = [
    ...points(
      sel.filter((r) => r.scenario === 'read-seq'),
      MEASURES[0],
      (r) => (r.faultNsP50 === null ? null : r.faultNsP50 / 1e3),
    ),
    ...points(
      sel.filter((r) => r.scenario === 'first-chunk'),
      MEASURES[1],
      (r) => (r.firstAccessNs === null ? null : r.firstAccessNs / 1e3),
    ),
  ];
  if (!pts.some((p) => p.method === METHODS[1])) return null;
  const conditions = [...new Set(pts.map((p) => p.condition))].sort((a, b) =>
    a === 'local source' ? -1 : b === 'local source' ? 1 : parseFloat(a.slice(12)) - parseFloat(b.slice(12)),
  );
  const x = { field: 'condition', type: 'nominal' as const, title: null, sort: conditions, axis: { labelAngle: 0 } };
  const color = { field: 'method', type: 'nominal' as const, title: null, sort: METHODS, scale: { domain: METHODS, range: ['#4c78a8', '#d9822b', '#9aa5b1'] } };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: "uffd's handler: a thread against a process of its own",
      subtitle: [...provenance(runId, false, '--cpus same, no prefetch'), 'dot: median; rule: min..max over repetitions; log scale'],
    },
    config: CONFIG,
    data: { values: pts },
    facet: { row: { field: 'measure', type: 'nominal', title: null, sort: MEASURES } },
    resolve: { scale: { y: 'independent' } },
    spec: {
      width: 520,
      height: 200,
      layer: [
        {
          mark: { type: 'point', filled: true, size: 90 },
          encoding: {
            x,
            xOffset: { field: 'method', type: 'nominal', sort: METHODS },
            y: { field: 'median', type: 'quantitative', title: 'µs', scale: { type: 'log' } },
            color,
            tooltip: [
              { field: 'method', type: 'nominal' },
              { field: 'condition', type: 'nominal' },
              { field: 'median', type: 'quantitative', format: '.1f' },
              { field: 'reps', type: 'quantitative' },
            ],
          },
        },
        {
          mark: { type: 'rule' },
          encoding: {
            x,
            xOffset: { field: 'method', type: 'nominal', sort: METHODS },
            y: { field: 'min', type: 'quantitative' },
            y2: { field: 'max' },
            color: { value: '#333333' },
          },
        },
      ],
    },
  };
}

export const handlerProcess: FigureDef = {
  name: 'handler-process',
  caption:
    "uffd's handler as a thread of the application against a process of its own that received the userfaultfd over a Unix socket " +
    "(the thesis's set-up), with sigsegv for reference: per-fault cost of a sequential read (the application's median fault) and " +
    'first-chunk latency, local and remote against RTT, --cpus same (matrix `handler`). A condition is drawn only where both handlers ran. Dot: median; rule: min..max over repetitions; log scale.',
  build,
};
