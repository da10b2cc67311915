// Splits a strategy's median per-fault time (read-seq, 4 KiB, 0 ms RTT) into
// floor (the bare kernel mechanism, measured alone), transport (a raw TCP
// request/response of one chunk) and handling (everything else the strategy
// adds: bookkeeping, copies, wake-ups), so a slow strategy shows *where* it is slow.
import { compareMethods, methodLabel, type RunRow } from './runs.js';
import { oneParameterSet } from './slice.js';
import { bootstrapMedian, bootstrapRatio, groupBy, median, values, type Interval } from './stats.js';

/**
 * The floor each strategy cannot go below. memory and eager read populated
 * pages, so their floor is the chunk copy; disk takes a page-cache minor
 * fault, closest to touching a fresh anonymous page.
 */
export const FLOOR_OF: Record<string, string> = {
  uffd: 'floor-uffd',
  sigsegv: 'floor-sigsegv',
  memory: 'floor-memcpy',
  eager: 'floor-memcpy',
  disk: 'floor-anon-touch',
};

const FETCHES_ON_FAULT = new Set(['uffd', 'sigsegv']);

export interface Decomposition {
  method: string;
  chunkBytes: number;
  /** CPU placement of the read-seq rows (and of the floor, when the run has it). */
  cpus: string;
  totalNs: number;
  floor: string;
  floorNs: number;
  transportNs: number;
  /**
   * fault p50 - floor - transport. Not clamped: a negative value means the
   * strategy measured below its floor, i.e. the floor includes a step the
   * strategy does outside its timed window, and the reader must see that.
   */
  handlingNs: number;
  /** Bootstrap intervals of the medians (stats.ts); transport is null for local sources. */
  total: Interval;
  floorInterval: Interval;
  transport: Interval | null;
  /** fault p50 / floor with its bootstrap interval (each side resampled). */
  overFloor: Interval;
  /**
   * 'clearly' when the whole interval of the fault p50 lies below floor +
   * transport (lower ends of theirs): the strategy beats its floor; 'within'
   * when handling <= 0 but the intervals overlap (handling indistinguishable
   * from 0); 'no' when handling > 0.
   */
  belowFloor: 'no' | 'within' | 'clearly';
}

/**
 * Median floor fault_ns_p50 per floor strategy (scenario=floor), measured with
 * the given CPU placement when the run has it (floors differ a lot between placements).
 */
export function floorMedians(rows: RunRow[], cpus = 'same'): Map<string, number> {
  return new Map([...floorSamples(rows, cpus)].map(([s, xs]) => [s, median(xs)]));
}

/** The floor rows' fault_ns_p50 values per floor strategy, at the placement `cpus` when the run has it. */
export function floorSamples(rows: RunRow[], cpus = 'same'): Map<string, number[]> {
  const floors = rows.filter((r) => r.scenario === 'floor' && r.faultNsP50 !== null);
  return new Map(
    [...groupBy(floors, (r) => r.strategy)].map(([s, g]) => {
      const placed = g.filter((r) => r.cpus === cpus);
      return [s, values(placed.length ? placed : g, (r) => r.faultNsP50)];
    }),
  );
}

/** Median raw TCP request/response time of one chunk (scenario=transport, strategy tcp). */
export function transportMedian(rows: RunRow[], chunkBytes: number, rttMs: number): number | null {
  const t = transportSamples(rows, chunkBytes, rttMs);
  return t.length ? median(t) : null;
}

function transportSamples(rows: RunRow[], chunkBytes: number, rttMs: number): number[] {
  const t = rows.filter((r) => r.scenario === 'transport' && r.strategy === 'tcp' && r.chunkBytes === chunkBytes && r.rttMs === rttMs);
  return values(t, (r) => r.faultNsP50);
}

export function decompose(okRows: RunRow[]): Decomposition[] {
  const sel = oneParameterSet(
    okRows.filter((r) => r.scenario === 'read-seq' && r.rttMs === 0 && r.strategy in FLOOR_OF && r.faultNsP50 !== null),
    'largest-region',
  );
  const out: Decomposition[] = [];
  for (const [method, g] of groupBy(sel, methodLabel)) {
    const floor = FLOOR_OF[g[0].strategy];
    const floorXs = floorSamples(okRows, g[0].cpus).get(floor);
    const transportXs = transportSamples(okRows, g[0].chunkBytes, 0);
    // Without its floor (or, for a remote source, the transport) the split would be made up: leave the method out.
    if (!floorXs?.length) continue;
    // Only lazy strategies fetch on a fault; eager's accesses hit memory it already copied.
    const remote = g[0].source === 'remote' && FETCHES_ON_FAULT.has(g[0].strategy);
    if (remote && transportXs.length === 0) continue;
    const totalXs = values(g, (r) => r.faultNsP50);
    const total = bootstrapMedian(totalXs);
    const floorInterval = bootstrapMedian(floorXs);
    const transport = remote ? bootstrapMedian(transportXs) : null;
    const totalNs = total.value;
    const floorNs = floorInterval.value;
    const transportNs = transport?.value ?? 0;
    out.push({
      method,
      chunkBytes: g[0].chunkBytes,
      cpus: g[0].cpus,
      totalNs,
      floor,
      floorNs,
      transportNs,
      handlingNs: totalNs - floorNs - transportNs,
      total,
      floorInterval,
      transport,
      overFloor: bootstrapRatio(totalXs, floorXs),
      belowFloor: totalNs - floorNs - transportNs > 0 ? 'no' : total.hi < floorInterval.lo + (transport?.lo ?? 0) ? 'clearly' : 'within',
    });
  }
  return out.sort((a, b) => compareMethods(a.method, b.method));
}
