// Rows of issue 6 (matrix `beyond`): the prefetch, thread and access-pattern
// columns (docs/columns.md, "Beyond the thesis"), and which rows are in the
// thesis's configuration, so that the thesis figures never mix in a prefetch
// or multi-threaded run that happens to share their other parameters.
import type { RunRow } from './runs.js';

export interface BeyondFields {
  /** none when the column is empty (rows from before issue 6, baselines). */
  prefetch: string;
  depth: number | null;
  appThreads: number;
  zipfS: number | null;
  touchFraction: number | null;
  huge: string;
  /** uffd: copy or continue; none elsewhere. */
  uffdInstall: string;
  vmaSpan: number | null;
  prefetched: number | null;
  bytesFetched: number | null;
  wallNs: number | null;
}

function num(v: string | undefined): number | null {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

export function beyondFields(r: Record<string, string | undefined>): BeyondFields {
  return {
    prefetch: r.prefetch?.trim() || 'none',
    depth: num(r.depth),
    appThreads: num(r.app_threads) ?? 1,
    zipfS: num(r.zipf_s),
    touchFraction: num(r.touch_fraction),
    huge: r.huge?.trim() || 'none',
    uffdInstall: r.uffd_install?.trim() || 'none',
    vmaSpan: num(r.vma_span),
    prefetched: num(r.prefetched),
    bytesFetched: num(r.bytes_fetched),
    wallNs: num(r.wall_ns),
  };
}

/** The thesis's set-up: no prefetch, one application thread, no VMA span, small pages. */
export function isThesisLike(r: RunRow): boolean {
  const b = r.beyond;
  return !b || (b.prefetch === 'none' && b.appThreads === 1 && (b.vmaSpan ?? 1) === 1 && b.huge === 'none' && (b.uffdInstall === 'none' || b.uffdInstall === 'copy'));
}

/**
 * Rows of several runs, split by kind of run. A run is a "beyond run" when any
 * of its rows is not thesis-like (matrix `beyond`); its thesis-like rows (e.g.
 * group thesis-setup-vs-rtt) are its own baselines, not repetitions of the
 * thesis's cells. When beyond runs are combined with at least one other run,
 * the thesis figures and tables use only the other runs' rows and the beyond
 * figures only the beyond runs' rows, so neither mixes in the other's
 * repetitions. Otherwise (one run, or runs of one kind) both get every row.
 * Rows without a run id count as one run.
 */
export function splitBeyondRuns(rows: RunRow[]): { thesis: RunRow[]; beyond: RunRow[] } {
  const beyondRuns = new Set(rows.filter((r) => !isThesisLike(r)).map((r) => r.runId));
  const thesis = rows.filter((r) => !beyondRuns.has(r.runId));
  if (beyondRuns.size === 0 || thesis.length === 0) return { thesis: rows, beyond: rows };
  return { thesis, beyond: rows.filter((r) => beyondRuns.has(r.runId)) };
}

/** Legend label of a lazy method with its policy: "uffd (remote), ahead:64". */
export function policyLabel(r: RunRow): string {
  const src = r.source && r.source !== 'none' ? ` (${r.source})` : '';
  const pf = r.beyond && r.beyond.prefetch !== 'none' ? `, ${r.beyond.prefetch}` : r.strategy === 'uffd' || r.strategy === 'sigsegv' ? ', no prefetch' : '';
  const install = r.beyond?.uffdInstall === 'continue' || r.beyond?.uffdInstall === 'move' ? ` ${r.beyond.uffdInstall.toUpperCase()}` : '';
  return `${r.strategy}${install}${src}${pf}`;
}
