// A figure shows one slice of the matrix. A run can hold the same method at
// the same RTT with different parameters (e.g. read-seq at 0 ms with a 64 MiB
// region in the 0 ms group and a 256 KiB region in the RTT sweep), and a
// median over both would describe neither. So per method we keep the rows of
// one parameter set, chosen the same way everywhere.
import { methodLabel, type RunRow } from './runs.js';
import { groupBy } from './stats.js';

/** The thesis's access size; figures prefer it when a run sweeps chunk sizes. */
export const THESIS_CHUNK = 4096;

export type ParameterRule =
  /** 0 ms figures: the largest region (steady state, as the thesis's 40 MiB-4 GiB regions). */
  | 'largest-region'
  /** vs-RTT figures: the parameter set covering the most RTT values (the sweep). */
  | 'widest-rtt-sweep';

type Param = 'region' | 'chunk' | 'cpus' | 'threads';

const keyOf = (r: RunRow, ignore: Param[]) =>
  [
    ignore.includes('region') ? '' : r.regionBytes,
    ignore.includes('chunk') ? '' : r.chunkBytes,
    ignore.includes('cpus') ? '' : r.cpus,
    ignore.includes('threads') ? '' : r.handlerThreads,
  ].join('/');

/** Higher is preferred: the thesis's set-up first (4 KiB, handler on the same CPUs, one handler thread). */
function score(g: RunRow[], rule: ParameterRule): number[] {
  const r = g[0];
  return [
    r.chunkBytes === THESIS_CHUNK ? 1 : 0,
    r.cpus === 'same' ? 1 : 0,
    (r.handlerThreads ?? 1) <= 1 ? 1 : 0,
    rule === 'largest-region' ? (r.regionBytes ?? 0) : new Set(g.map((x) => x.rttMs)).size,
    g.length,
  ];
}

const better = (a: number[], b: number[]) => {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] > b[i];
  return false;
};

export function oneParameterSet(rows: RunRow[], rule: ParameterRule, ignore: Param[] = []): RunRow[] {
  const out: RunRow[] = [];
  for (const method of groupBy(rows, methodLabel).values()) {
    let best: RunRow[] = [];
    let bestScore: number[] = [];
    for (const g of groupBy(method, (r) => keyOf(r, ignore)).values()) {
      const s = score(g, rule);
      if (best.length === 0 || better(s, bestScore)) [best, bestScore] = [g, s];
    }
    out.push(...best);
  }
  return out;
}

/** "region 64 MiB, chunk 4 KiB, cpus same" for what the kept rows share; the subtitle states what was plotted. */
export function describeParameters(rows: RunRow[]): string {
  const uniq = <T>(xs: T[]) => [...new Set(xs)];
  const regions = uniq(rows.map((r) => r.regionBytes).filter((x): x is number => x !== null));
  const chunks = uniq(rows.map((r) => r.chunkBytes));
  const cpus = uniq(rows.map((r) => r.cpus));
  const parts = [
    regions.length === 1 ? `region ${bytes(regions[0])}` : regions.length > 1 ? `regions ${regions.map(bytes).join('/')}` : '',
    chunks.length === 1 ? `chunk ${bytes(chunks[0])}` : `chunks ${chunks.map(bytes).join('/')}`,
    cpus.length === 1 && cpus[0] ? `cpus ${cpus[0]}` : '',
  ];
  return parts.filter(Boolean).join(', ');
}

export function bytes(n: number): string {
  for (const [u, s] of [
    [2 ** 30, 'GiB'],
    [2 ** 20, 'MiB'],
    [2 ** 10, 'KiB'],
  ] as const)
    if (n >= u && n % u === 0) return `${n / u} ${s}`;
  return `${n} B`;
}
