// Rows of the design space beyond the thesis (issue 6, matrix `design-space`,
// `beyond` before): the prefetch, thread and access-pattern columns
// (docs/columns.md, "Beyond the thesis"), and which rows are in the thesis's
// configuration, so that the thesis figures never mix in a prefetch or
// multi-threaded run that happens to share their other parameters.
// The row type is analysis/runs.ts's, which reads these fields: the functions
// here ask only for the fields they use.

export interface DesignSpaceFields {
  /** none when the column is empty (rows from before issue 6, baselines). */
  prefetch: string;
  depth: number | null;
  appThreads: number;
  zipfS: number | null;
  touchFraction: number | null;
  huge: string;
  /** uffd: copy, continue or move; none elsewhere. */
  uffdInstall: string;
  vmaSpan: number | null;
  prefetched: number | null;
  bytesFetched: number | null;
  wallNs: number | null;
  /** uffd's handler: thread or process; empty in rows before the column (all thread) and for hand-made rows. */
  handler?: string;
  /** --resident-limit rows (issue 19): the limit in bytes, null without one; its policy and counters. */
  residentLimit?: number | null;
  evict?: string;
  evictions?: number | null;
  refetches?: number | null;
  writebacks?: number | null;
  maxResidentBytes?: number | null;
  faults?: number | null;
  chunksTouched?: number | null;
}

/** A row as far as these functions read it. */
interface WithDesignSpace {
  designSpace?: DesignSpaceFields;
}

function num(v: string | undefined): number | null {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

export function designSpaceFields(r: Record<string, string | undefined>): DesignSpaceFields {
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
    handler: r.handler?.trim() || '',
    residentLimit: num(r.resident_limit),
    evict: r.evict?.trim() || '',
    evictions: num(r.evictions),
    refetches: num(r.refetches),
    writebacks: num(r.writebacks),
    maxResidentBytes: num(r.max_resident_bytes),
    faults: num(r.faults),
    chunksTouched: num(r.chunks_touched),
  };
}

/** The thesis's set-up: no prefetch, one application thread, no VMA span, small pages, uffd's handler a thread, no resident limit. */
export function isThesisLike(r: WithDesignSpace): boolean {
  const b = r.designSpace;
  return (
    !b ||
    (b.prefetch === 'none' &&
      b.appThreads === 1 &&
      (b.vmaSpan ?? 1) === 1 &&
      b.huge === 'none' &&
      (b.uffdInstall === 'none' || b.uffdInstall === 'copy') &&
      b.handler !== 'process' &&
      (b.residentLimit ?? null) === null)
  );
}

/**
 * Rows of several runs, split by kind of run. A run is a "design-space run"
 * when any of its rows is not thesis-like (matrix `design-space`); its
 * thesis-like rows (e.g. group thesis-setup-vs-rtt) are its own baselines, not
 * repetitions of the thesis's cells. When design-space runs are combined with
 * at least one other run, the thesis figures and tables use only the other
 * runs' rows and the design-space figures only the design-space runs' rows, so
 * neither mixes in the other's repetitions. Otherwise (one run, or runs of one
 * kind) both get every row. Rows without a run id count as one run.
 */
export function splitDesignSpaceRuns<R extends WithDesignSpace & { runId: string }>(rows: R[]): { thesis: R[]; designSpace: R[] } {
  const designRuns = new Set(rows.filter((r) => !isThesisLike(r)).map((r) => r.runId));
  const thesis = rows.filter((r) => !designRuns.has(r.runId));
  if (designRuns.size === 0 || thesis.length === 0) return { thesis: rows, designSpace: rows };
  return { thesis, designSpace: rows.filter((r) => designRuns.has(r.runId)) };
}

/** Legend label of a lazy method with its policy: "uffd (remote), ahead:64". */
export function policyLabel(r: WithDesignSpace & { strategy: string; source: string }): string {
  const src = r.source && r.source !== 'none' ? ` (${r.source})` : '';
  const pf =
    r.designSpace && r.designSpace.prefetch !== 'none'
      ? `, ${r.designSpace.prefetch}`
      : r.strategy === 'uffd' || r.strategy === 'sigsegv'
        ? ', no prefetch'
        : '';
  const install = r.designSpace?.uffdInstall === 'continue' || r.designSpace?.uffdInstall === 'move' ? ` ${r.designSpace.uffdInstall.toUpperCase()}` : '';
  const handler = r.designSpace?.handler === 'process' ? ' (handler process)' : '';
  return `${r.strategy}${install}${handler}${src}${pf}`;
}
