// runs.csv -> typed rows. The columns are documented in docs/columns.md.
import { readFileSync } from 'node:fs';
import { parseCsvTable } from './csv.js';
import { isPushScenario, PUSH_REQUIRED_COLUMNS, pushFields, type PushFields } from './push.js';
import { designSpaceFields, type DesignSpaceFields } from './design-space.js';

/** Columns the figures and tables read; a CSV without one of them cannot be analysed. */
export const REQUIRED_COLUMNS = [
  'status',
  'strategy',
  'scenario',
  'source',
  'repetition',
  'rtt_ms',
  'chunk_bytes',
  'cpus',
  'first_access_ns',
  'throughput_mibps',
  'fault_ns_p50',
  'fault_ns_p99',
  'fault_ns_cdf',
] as const;

export class MissingColumnError extends Error {
  constructor(
    readonly column: string,
    file: string,
  ) {
    super(`${file}: required column "${column}" is missing (see docs/columns.md)`);
  }
}

export interface RunRow {
  /** The run the row came from (column run_id; loadRunDirs sets it from the directory's env.json). */
  runId: string;
  status: string;
  message: string;
  cellId: string;
  strategy: string;
  scenario: string;
  source: string;
  repetition: number;
  rttMs: number;
  rttMeasuredMs: number | null;
  chunkBytes: number;
  regionBytes: number | null;
  cpus: string;
  /** How RTT was emulated: none, server-delay, netem (optional column). */
  latency: string;
  handlerThreads: number | null;
  firstAccessNs: number | null;
  totalNs: number | null;
  throughputMibps: number | null;
  faultNsP50: number | null;
  faultNsP99: number | null;
  /** 21 quantiles p0, p5, ..., p100 in ns, or null when the row has none. */
  faultNsCdf: number[] | null;
  /** 101 quantiles p0, p1, ..., p100 in ns (optional column fault_ns_cdf_fine), or null. */
  faultNsCdfFine?: number[] | null;
  verified: string;
  /** The strategy's set-up, outside the timed workload (optional column setup_ns; empty in runs before it). */
  setupNs?: number | null;
  /** Handler side, per chunk: time to get it from the source, time to install it (optional columns). */
  fetchNsP50?: number | null;
  installNsP50?: number | null;
  /** write-track and migrate rows: the push columns (analysis/push.ts); null for every other scenario. */
  push: PushFields | null;
  /** Prefetch, threads, access-pattern knobs (analysis/design-space.ts); absent in hand-made rows. */
  designSpace?: DesignSpaceFields;
}

/** Empty cells mean "not measured" (e.g. rtt_measured_ms for local rows). */
function num(v: string | undefined): number | null {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function cdf(v: string | undefined, points = 21): number[] | null {
  if (!v || v.trim() === '') return null;
  const q = v.split(';').map((s) => Number(s));
  // A CDF that is not `points` finite numbers is unusable; drop it rather than plot garbage.
  return q.length === points && q.every(Number.isFinite) ? q : null;
}

export function rowsFromCsv(text: string, file = 'runs.csv'): RunRow[] {
  const { header, rows } = parseCsvTable(text);
  for (const c of REQUIRED_COLUMNS) if (!header.includes(c)) throw new MissingColumnError(c, file);
  // The push columns are needed only by push rows: a thesis-only CSV predates them.
  if (rows.some((r) => isPushScenario(r.scenario))) for (const c of PUSH_REQUIRED_COLUMNS) if (!header.includes(c)) throw new MissingColumnError(c, file);
  return rows.map((r) => ({
    runId: r.run_id ?? '',
    status: r.status,
    message: r.message ?? '',
    cellId: r.cell_id ?? '',
    strategy: r.strategy,
    scenario: r.scenario,
    source: r.source,
    repetition: num(r.repetition) ?? 0,
    rttMs: num(r.rtt_ms) ?? 0,
    rttMeasuredMs: num(r.rtt_measured_ms),
    chunkBytes: num(r.chunk_bytes) ?? 0,
    regionBytes: num(r.region_bytes),
    cpus: r.cpus,
    latency: r.latency ?? '',
    handlerThreads: num(r.handler_threads),
    firstAccessNs: num(r.first_access_ns),
    totalNs: num(r.total_ns),
    throughputMibps: num(r.throughput_mibps),
    faultNsP50: num(r.fault_ns_p50),
    faultNsP99: num(r.fault_ns_p99),
    faultNsCdf: cdf(r.fault_ns_cdf),
    faultNsCdfFine: cdf(r.fault_ns_cdf_fine, 101),
    verified: r.verified ?? '',
    setupNs: num(r.setup_ns),
    fetchNsP50: num(r.fetch_ns_p50),
    installNsP50: num(r.install_ns_p50),
    push: pushFields(r),
    designSpace: designSpaceFields(r),
  }));
}

export function loadRuns(file: string): RunRow[] {
  return rowsFromCsv(readFileSync(file, 'utf8'), file);
}

/** Only rows that completed and verified count as values; failed rows are reported, not plotted. */
export function okRows(rows: RunRow[]): RunRow[] {
  return rows.filter((r) => r.status === 'ok');
}

/**
 * Legend/axis label of a method: the CSV's strategy name, plus the source when
 * the same strategy runs against more than one (uffd (local) vs uffd (remote)).
 */
export function methodLabel(r: Pick<RunRow, 'strategy' | 'source'>): string {
  return r.source && r.source !== 'none' ? `${r.strategy} (${r.source})` : r.strategy;
}

/** Order methods the way the thesis presents them: baselines first, then the lazy ones. */
export const METHOD_ORDER = ['memory', 'disk', 'eager', 'uffd', 'sigsegv'];

export function compareMethods(a: string, b: string): number {
  const rank = (s: string) => {
    const i = METHOD_ORDER.indexOf(s.split(' ')[0]);
    return i < 0 ? METHOD_ORDER.length : i;
  };
  return rank(a) - rank(b) || a.localeCompare(b);
}
