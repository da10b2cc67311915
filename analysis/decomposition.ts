// Splits a strategy's median per-fault time (read-seq, 4 KiB, 0 ms RTT) into
// floor (the bare kernel mechanism, measured alone), transport (a raw TCP
// request/response of one chunk) and handling (everything else the strategy
// adds: bookkeeping, copies, wake-ups), so a slow strategy shows *where* it is slow.
import { compareMethods, methodLabel, type RunRow } from './runs.js';
import { oneParameterSet } from './slice.js';
import { groupBy, median, values } from './stats.js';

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
  totalNs: number;
  floor: string;
  floorNs: number;
  transportNs: number;
  handlingNs: number;
}

const medianP50 = (rs: RunRow[]) => median(values(rs, (r) => r.faultNsP50));

/**
 * Median floor fault_ns_p50 per floor strategy (scenario=floor), measured with
 * the given CPU placement when the run has it (floors differ a lot between placements).
 */
export function floorMedians(rows: RunRow[], cpus = 'same'): Map<string, number> {
  const floors = rows.filter((r) => r.scenario === 'floor' && r.faultNsP50 !== null);
  return new Map(
    [...groupBy(floors, (r) => r.strategy)].map(([s, g]) => {
      const placed = g.filter((r) => r.cpus === cpus);
      return [s, medianP50(placed.length ? placed : g)];
    }),
  );
}

/** Median raw TCP request/response time of one chunk (scenario=transport, strategy tcp). */
export function transportMedian(rows: RunRow[], chunkBytes: number, rttMs: number): number | null {
  const t = rows.filter((r) => r.scenario === 'transport' && r.strategy === 'tcp' && r.chunkBytes === chunkBytes && r.rttMs === rttMs && r.faultNsP50 !== null);
  return t.length ? medianP50(t) : null;
}

export function decompose(okRows: RunRow[]): Decomposition[] {
  const sel = oneParameterSet(
    okRows.filter((r) => r.scenario === 'read-seq' && r.rttMs === 0 && r.strategy in FLOOR_OF && r.faultNsP50 !== null),
    'largest-region',
  );
  const out: Decomposition[] = [];
  for (const [method, g] of groupBy(sel, methodLabel)) {
    const floor = FLOOR_OF[g[0].strategy];
    const floorNs = floorMedians(okRows, g[0].cpus).get(floor);
    const transport = transportMedian(okRows, g[0].chunkBytes, 0);
    // Without its floor (or, for a remote source, the transport) the split would be made up: leave the method out.
    if (floorNs === undefined) continue;
    // Only lazy strategies fetch on a fault; eager's accesses hit memory it already copied.
    const remote = g[0].source === 'remote' && FETCHES_ON_FAULT.has(g[0].strategy);
    if (remote && transport === null) continue;
    const totalNs = medianP50(g);
    const transportNs = remote ? transport! : 0;
    out.push({ method, chunkBytes: g[0].chunkBytes, totalNs, floor, floorNs, transportNs, handlingNs: Math.max(0, totalNs - floorNs - transportNs) });
  }
  return out.sort((a, b) => compareMethods(a.method, b.method));
}
