// Push and migrate rows (scenarios write-track and migrate, matrix `push`):
// their extra columns (docs/columns.md, "Push: write-track and migrate") and
// the summaries the push figures and the paper's `push` section share.
// A CSV without push rows (the thesis run) needs none of these columns.

/** Scenarios whose rows carry the push columns. */
export const PUSH_SCENARIOS = ['write-track', 'migrate'] as const;

export const isPushScenario = (scenario: string) => (PUSH_SCENARIOS as readonly string[]).includes(scenario);

/** Columns the push figures and the push table read; required only when a CSV holds push rows. */
export const PUSH_REQUIRED_COLUMNS = [
  'tracker',
  'pattern',
  'intervals',
  'bytes_written',
  'write_slowdown',
  'write_overhead_ns',
  'write_ns_p50',
  'write_untracked_ns_p50',
  'collect_ns_p50',
  'dirty_chunks',
  'bytes_pushed',
  'write_amplification',
  'tracker_exact',
  'migration_ns',
  'downtime_ns',
  'precopy_rounds',
  'bytes_moved',
] as const;

export interface PushFields {
  /** write-track: the tracker (= strategy); migrate: the source's tracker. */
  tracker: string;
  pattern: string;
  writeFraction: number | null;
  writeBytes: number | null;
  intervals: number | null;
  writes: number | null;
  bytesWritten: number | null;
  writeNs: number | null;
  writeNsUntracked: number | null;
  /** write_ns / write_ns_untracked (x). */
  writeSlowdown: number | null;
  /** (write_ns - write_ns_untracked) / writes, ns; can be negative when the tracker costs less than the noise. */
  writeOverheadNs: number | null;
  /** Median time of one tracked write, and of one untracked write (same call), ns. */
  writeNsP50: number | null;
  writeUntrackedNsP50: number | null;
  collectNsP50: number | null;
  collectNsMax: number | null;
  pushNsTotal: number | null;
  /** Dirty chunks collected in each interval. */
  dirtyChunks: number[] | null;
  bytesPushed: number | null;
  writeAmplification: number | null;
  missedChunks: number | null;
  extraChunks: number | null;
  trackerExact: string;
  badChunks: number | null;
  compareNs: number | null;
  migrationNs: number | null;
  downtimeNs: number | null;
  precopyRounds: number | null;
  roundDirtyChunks: number[] | null;
  finalDirtyChunks: number | null;
  precopyNs: number | null;
  finalPushNs: number | null;
  resumeNs: number | null;
  pullNs: number | null;
  bytesMoved: number | null;
  /** migrate (issue 20; optional columns, so older runs read as pre-copy
   * with the background threads' pull): the mode, the destination's pull,
   * why pre-copy stopped, each round's push and collect time, post-copy's pull. */
  migrateMode: string;
  destPrefetch: string;
  stopReason: string;
  roundPushNs: number[] | null;
  roundCollectNs: number[] | null;
  networkFaults: number | null;
  postcopyNs: number | null;
}

function num(v: string | undefined): number | null {
  if (v === undefined || v.trim() === '') return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

/** "82;82;76" -> [82, 82, 76]; null when empty or not all numbers. */
function list(v: string | undefined): number[] | null {
  if (!v || v.trim() === '') return null;
  const xs = v.split(';').map((s) => Number(s));
  return xs.every(Number.isFinite) ? xs : null;
}

/** The push fields of one CSV record, or null when the row is not a push scenario. */
export function pushFields(r: Record<string, string | undefined>): PushFields | null {
  if (!isPushScenario(r.scenario ?? '')) return null;
  return {
    tracker: r.tracker ?? '',
    pattern: r.pattern ?? '',
    writeFraction: num(r.write_fraction),
    writeBytes: num(r.write_bytes),
    intervals: num(r.intervals),
    writes: num(r.writes),
    bytesWritten: num(r.bytes_written),
    writeNs: num(r.write_ns),
    writeNsUntracked: num(r.write_ns_untracked),
    writeSlowdown: num(r.write_slowdown),
    writeOverheadNs: num(r.write_overhead_ns),
    writeNsP50: num(r.write_ns_p50),
    writeUntrackedNsP50: num(r.write_untracked_ns_p50),
    collectNsP50: num(r.collect_ns_p50),
    collectNsMax: num(r.collect_ns_max),
    pushNsTotal: num(r.push_ns_total),
    dirtyChunks: list(r.dirty_chunks),
    bytesPushed: num(r.bytes_pushed),
    writeAmplification: num(r.write_amplification),
    missedChunks: num(r.missed_chunks),
    extraChunks: num(r.extra_chunks),
    trackerExact: r.tracker_exact ?? '',
    badChunks: num(r.bad_chunks),
    compareNs: num(r.compare_ns),
    migrationNs: num(r.migration_ns),
    downtimeNs: num(r.downtime_ns),
    precopyRounds: num(r.precopy_rounds),
    roundDirtyChunks: list(r.round_dirty_chunks),
    finalDirtyChunks: num(r.final_dirty_chunks),
    precopyNs: num(r.precopy_ns),
    finalPushNs: num(r.final_push_ns),
    resumeNs: num(r.resume_ns),
    pullNs: num(r.pull_ns),
    bytesMoved: num(r.bytes_moved),
    migrateMode: r.scenario === 'migrate' ? r.migrate_mode || 'precopy' : '',
    destPrefetch: r.scenario === 'migrate' ? r.dest_prefetch || 'none' : '',
    stopReason: r.stop_reason ?? '',
    roundPushNs: list(r.round_push_ns),
    roundCollectNs: list(r.round_collect_ns),
    networkFaults: num(r.network_faults),
    postcopyNs: num(r.postcopy_ns),
  };
}

/** Trackers in the order the paper discusses them; the `none` control last. */
/**
 * Slowdown of the median write: write_ns_p50 / write_untracked_ns_p50. The
 * sum-based write_slowdown is moved by a single preemption of a few ms in
 * either loop (seen on the shared 2-core VM); the medians are not.
 */
export function medianWriteSlowdown(p: PushFields): number | null {
  return p.writeNsP50 !== null && p.writeUntrackedNsP50 ? p.writeNsP50 / p.writeUntrackedNsP50 : null;
}

export const TRACKER_ORDER = ['uffd-wp', 'uffd-wp-async', 'mprotect', 'soft-dirty', 'none'];
export const PATTERN_ORDER = ['seq', 'random', 'hot'];

const rankIn = (order: string[], s: string) => {
  const i = order.indexOf(s);
  return i < 0 ? order.length : i;
};
export const compareTrackers = (a: string, b: string) => rankIn(TRACKER_ORDER, a) - rankIn(TRACKER_ORDER, b) || a.localeCompare(b);
export const comparePatterns = (a: string, b: string) => rankIn(PATTERN_ORDER, a) - rankIn(PATTERN_ORDER, b) || a.localeCompare(b);
