// The runs.csv columns, in order (documented in docs/columns.md), and a row of them.

/** One runs.csv row, or one repetition's result as bench reports it (its keys are columns). */
export type Row = Record<string, string | number | boolean | null>;

export const COLUMNS = [
  'run_id', 'cell_id', 'group', 'repetition', 'timestamp', 'status', 'message',
  'strategy', 'scenario', 'source', 'region_bytes', 'chunk_bytes', 'rtt_ms', 'rtt_measured_ms', 'latency',
  'cpus', 'handler_threads', 'faults', 'bytes_fetched', 'first_access_ns', 'total_ns', 'throughput_mibps',
  'fault_ns_p50', 'fault_ns_p99', 'fault_ns_max', 'fault_ns_mean', 'fault_ns_cdf', 'fetch_ns_p50', 'install_ns_p50',
  'prefill_ns', 'verified', 'repeat', 'bench_mean_ns', 'bench_p99_ns', 'bench_rme_pct', 'bench_samples',
  'kernel', 'cpu_model', 'privileges', 'uffd_path', 'uffd_features', 'commit',
  // push: write-track and migrate (appended, so earlier columns keep their places)
  'tracker', 'pattern', 'write_fraction', 'write_bytes', 'intervals', 'writes', 'bytes_written',
  'write_ns', 'write_ns_untracked', 'write_slowdown', 'write_overhead_ns', 'write_ns_p50', 'write_ns_p99', 'write_untracked_ns_p50',
  'collect_ns_p50', 'collect_ns_max', 'push_ns_total', 'dirty_chunks', 'dirty_chunks_p50', 'dirty_chunks_max',
  'bytes_pushed', 'write_amplification', 'missed_chunks', 'extra_chunks', 'tracker_exact', 'bad_chunks', 'compare_ns',
  'migration_ns', 'downtime_ns', 'precopy_rounds', 'round_dirty_chunks', 'final_dirty_chunks', 'precopy_ns', 'final_push_ns',
  'relay_ns', 'resume_ns', 'pull_ns', 'bytes_moved', 'intervals_written', 'tracker_faults',
  // the design space beyond the thesis: prefetch, threads, access patterns, VMA limit (appended likewise)
  'prefetch', 'depth', 'pf_conns', 'app_threads', 'zipf_s', 'touch_fraction', 'huge', 'chunks_touched', 'unique_chunks',
  'prefetched', 'prefetch_requests', 'inflight_waits', 'trigger_faults', 'vma_span', 'span_chunks', 'map_count', 'wall_ns',
  'uffd_install', 'tlb_shootdowns',
  'app_minor_faults',
] as const;
