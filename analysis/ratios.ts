// Same-machine ratios: two measures taken in one run on one machine, divided.
// Absolute times move 2-4x between days and machines, so a ratio within one
// run is what transfers; the thesis's own ratio (both of its values from its
// one machine) sits beside ours rather than ours/thesis across machines.
import { decompose, FLOOR_OF } from './decomposition.js';
import { okRows, type RunRow } from './runs.js';
import { oneParameterSet } from './slice.js';
import { bootstrapRatio, values, type Interval } from './stats.js';
import type { ThesisReference } from './thesis.js';

/** One side of a ratio: a cell shape of the thesis matrix at 0 ms RTT (or a floor). */
export interface Side {
  scenario: string;
  strategy: string;
  /** none for the baselines and floors. */
  source: string;
  column: 'first_access_ns' | 'throughput_mibps' | 'fault_ns_p50';
}

export interface RatioDef {
  id: string;
  label: string;
  num: Side;
  den: Side;
  /** The thesis values (analysis/thesis-reference.json ids) whose quotient is the thesis's own ratio; absent when it did not measure one side. */
  thesis?: { num: string; den: string };
}

const side = (scenario: string, strategy: string, source: string, column: Side['column']): Side => ({ scenario, strategy, source, column });
const firstChunk = (strategy: string, source: string) => side('first-chunk', strategy, source, 'first_access_ns');
const throughput = (strategy: string, source: string) => side('read-seq', strategy, source, 'throughput_mibps');
const faultP50 = (strategy: string, source: string) => side('read-seq', strategy, source, 'fault_ns_p50');
const floor = (strategy: string) => side('floor', FLOOR_OF[strategy], 'none', 'fault_ns_p50');

/** The ratios the paper reports, all at 0 ms RTT. */
export const RATIOS: RatioDef[] = [
  {
    id: 'first-chunk-uffd-over-disk',
    label: 'first chunk, uffd (local) / disk',
    num: firstChunk('uffd', 'local'),
    den: firstChunk('disk', 'none'),
    thesis: { num: 'first-chunk-0ms-userfaultfd', den: 'first-chunk-0ms-disk' },
  },
  {
    id: 'first-chunk-uffd-over-memory',
    label: 'first chunk, uffd (local) / memory',
    num: firstChunk('uffd', 'local'),
    den: firstChunk('memory', 'none'),
    thesis: { num: 'first-chunk-0ms-userfaultfd', den: 'first-chunk-0ms-memory' },
  },
  {
    id: 'throughput-memory-over-uffd',
    label: 'read throughput, memory / uffd (local)',
    num: throughput('memory', 'none'),
    den: throughput('uffd', 'local'),
    thesis: { num: 'throughput-0ms-memory', den: 'throughput-0ms-userfaultfd' },
  },
  {
    id: 'throughput-disk-over-uffd',
    label: 'read throughput, disk / uffd (local)',
    num: throughput('disk', 'none'),
    den: throughput('uffd', 'local'),
    thesis: { num: 'throughput-0ms-disk', den: 'throughput-0ms-userfaultfd' },
  },
  {
    id: 'first-chunk-uffd-over-sigsegv-local',
    label: 'first chunk, uffd / sigsegv (local)',
    num: firstChunk('uffd', 'local'),
    den: firstChunk('sigsegv', 'local'),
  },
  {
    id: 'first-chunk-uffd-over-sigsegv-remote',
    label: 'first chunk, uffd / sigsegv (remote)',
    num: firstChunk('uffd', 'remote'),
    den: firstChunk('sigsegv', 'remote'),
  },
  { id: 'fault-p50-uffd-over-sigsegv-local', label: 'fault p50, uffd / sigsegv (local)', num: faultP50('uffd', 'local'), den: faultP50('sigsegv', 'local') },
  { id: 'fault-p50-uffd-over-floor', label: 'fault p50, uffd (local) / its floor (floor-uffd)', num: faultP50('uffd', 'local'), den: floor('uffd') },
  {
    id: 'fault-p50-sigsegv-over-floor',
    label: 'fault p50, sigsegv (local) / its floor (floor-sigsegv)',
    num: faultP50('sigsegv', 'local'),
    den: floor('sigsegv'),
  },
];

const valueOf = (r: RunRow, c: Side['column']) => (c === 'first_access_ns' ? r.firstAccessNs : c === 'throughput_mibps' ? r.throughputMibps : r.faultNsP50);

/**
 * The repetitions of one side: 0 ms RTT, the same parameter set the figures
 * and the thesis comparison pick (largest region, 4 KiB, same CPUs); a floor
 * with the CPU placement `cpus`.
 */
export function sideValues(rows: RunRow[], s: Side, cpus = 'same'): number[] {
  const same = okRows(rows).filter((r) => r.scenario === s.scenario && r.strategy === s.strategy && r.source === s.source && r.rttMs === 0);
  if (s.scenario === 'floor') {
    const placed = same.filter((r) => r.cpus === cpus);
    return values(placed.length ? placed : same, (r) => r.faultNsP50);
  }
  return values(oneParameterSet(same, 'largest-region'), (r) => valueOf(r, s.column));
}

export interface RatioRow {
  def: RatioDef;
  ours: Interval | null;
  /** The thesis's quotient of its own two values; null when it has no such pair. */
  thesis: number | null;
  /** Whether either thesis value was read off a figure. */
  thesisApproximate: boolean;
}

/** Every ratio in RATIOS that the rows have both sides of (a bootstrap interval each), with the thesis's beside it. */
export function sameMachineRatios(rows: RunRow[], ref?: ThesisReference): RatioRow[] {
  const byId = new Map((ref?.values ?? []).map((v) => [v.id, v]));
  // The floor of a strategy is taken at the placement its read-seq rows used (decompose picks the same).
  const placement = new Map(decompose(okRows(rows)).map((d) => [d.method, d.cpus]));
  return RATIOS.map((def) => {
    const cpus = placement.get(`${def.num.strategy} (${def.num.source})`) ?? 'same';
    const num = sideValues(rows, def.num, cpus);
    const den = sideValues(rows, def.den, cpus);
    const tn = def.thesis ? byId.get(def.thesis.num) : undefined;
    const td = def.thesis ? byId.get(def.thesis.den) : undefined;
    return {
      def,
      ours: num.length && den.length ? bootstrapRatio(num, den) : null,
      thesis: tn && td ? tn.value / td.value : null,
      thesisApproximate: !!(tn?.approximate || td?.approximate),
    };
  });
}
