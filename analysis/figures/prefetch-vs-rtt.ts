// Sequential read throughput against RTT for every prefetch policy of uffd and
// sigsegv (issue 6), with the thesis's uffd bound and its NBD managed-mount
// values on top: can fault-driven pulling hold the NBD figures with prefetch?
import type { TopLevelSpec } from 'vega-lite';
import { policyLabel } from '../beyond.js';
import type { RunRow } from '../runs.js';
import { bytes } from '../slice.js';
import { CONFIG, HEIGHT, provenance, seriesEncoding, WIDTH, type Layer } from '../spec-common.js';
import { groupBy, spread, values } from '../stats.js';
import { thesisSeries, thesisValuesFor } from '../thesis.js';
import type { FigureDef, FigureInput } from './types.js';

const NAME = 'prefetch-vs-rtt';

/** Per series (method, policy, chunk), the parameter set with the most RTT values. */
function widestSweeps(rows: RunRow[]): RunRow[] {
  const out: RunRow[] = [];
  for (const s of groupBy(rows, (r) => `${policyLabel(r)}\u0000${r.chunkBytes}`).values()) {
    let best: RunRow[] = [];
    for (const g of groupBy(s, (r) => `${r.regionBytes}/${r.cpus}/${r.beyond?.depth ?? ''}/${r.handlerThreads ?? 1}`).values())
      if (new Set(g.map((r) => r.rttMs)).size > new Set(best.map((r) => r.rttMs)).size) best = g;
    out.push(...best);
  }
  return out;
}

function build({ rows, thesis, runId }: FigureInput): TopLevelSpec | null {
  const sel = widestSweeps(
    rows.filter((r) => r.scenario === 'read-seq' && r.source === 'remote' && (r.strategy === 'uffd' || r.strategy === 'sigsegv') && r.beyond && r.beyond.appThreads === 1 && r.throughputMibps !== null),
  );
  // A figure about prefetch needs at least one policy other than none, over at least two RTTs.
  if (!sel.some((r) => r.beyond!.prefetch !== 'none') || new Set(sel.map((r) => r.rttMs)).size < 2) return null;
  const stats = [...groupBy(sel, (r) => `${policyLabel(r)}\u0000${r.chunkBytes}\u0000${r.rttMs}`).values()].map((g) => {
    const s = spread(values(g, (r) => r.throughputMibps));
    return { series: `${policyLabel(g[0])}, ${bytes(g[0].chunkBytes)} chunks`, rtt: g[0].rttMs, median: s.median, min: s.min, max: s.max, reps: s.n };
  });
  const ref = thesisValuesFor(thesis, NAME).map((v) => ({
    series: thesisSeries(v),
    rtt: v.rtt_ms ?? 0,
    rtt_to: v.rtt_ms_to ?? v.rtt_ms ?? 0,
    y: v.value,
    published: `${v.bound === 'upper' ? '< ' : v.bound === 'lower' ? '> ' : ''}${v.value_as_published} ${v.unit_as_published}${v.approximate ? ' (approx.)' : ''}`,
  }));
  const series = [...stats.map((s) => s.series), ...ref.map((r) => r.series)];
  const x = { field: 'rtt', type: 'quantitative' as const, title: 'emulated round-trip time (ms)' };
  const yTitle = 'read throughput (MiB/s, log scale)';
  const yScale = { type: 'log' as const };
  const y = { field: 'median', type: 'quantitative' as const, title: yTitle, scale: yScale };
  const layers: Layer[] = [
    { data: { values: stats }, mark: { type: 'area', opacity: 0.15 }, encoding: { x, y: { ...y, field: 'min' }, y2: { field: 'max' }, ...seriesEncoding(series, false) } },
    { data: { values: stats }, mark: { type: 'line', strokeWidth: 2 }, encoding: { x, y, ...seriesEncoding(series, false) } },
    {
      data: { values: stats },
      mark: { type: 'point', filled: true, size: 40 },
      encoding: { x, y, ...seriesEncoding(series, true), tooltip: [{ field: 'series' }, { field: 'rtt' }, { field: 'median', format: '.1f' }, { field: 'min' }, { field: 'max' }, { field: 'reps' }] },
    },
  ];
  if (ref.length) {
    const ranges = ref.filter((r) => r.rtt_to > r.rtt);
    if (ranges.length)
      layers.push({ data: { values: ranges }, mark: { type: 'rule', strokeDash: [5, 4], strokeWidth: 1.5 }, encoding: { x, x2: { field: 'rtt_to' }, y: { ...y, field: 'y' }, ...seriesEncoding(series, false) } });
    layers.push({
      data: { values: ref },
      mark: { type: 'point', filled: true, size: 130, opacity: 1 },
      encoding: { x, y: { ...y, field: 'y' }, ...seriesEncoding(series, true), tooltip: [{ field: 'series' }, { field: 'published' }] },
    });
  }
  const regions = [...new Set(sel.map((r) => r.regionBytes).filter((b): b is number => b !== null))].map(bytes).join('/');
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Read throughput vs RTT per prefetch policy (sequential)', subtitle: [...provenance(runId, ref.length > 0, `regions ${regions}`), 'band: min..max over repetitions'] },
    width: WIDTH,
    height: HEIGHT + 60,
    config: CONFIG,
    layer: layers,
  };
}

export const prefetchVsRtt: FigureDef = {
  name: NAME,
  caption:
    'Sequential read throughput against emulated RTT for uffd and sigsegv per prefetch policy (median, band min..max, log scale, MiB = 2^20 bytes). ' +
    'Black: the thesis, userfaultfd without prefetch below 1 MB/s from 6 ms (upper bound), and its NBD managed mounts with 4096 pull workers, about 1 GB/s below 10 ms and above 500 MB/s at 25 ms (read off its figure).',
  build,
};
