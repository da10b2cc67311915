// The runs.csv columns, in order (documented in docs/columns.md).
export const COLUMNS = [
  'run_id', 'cell_id', 'group', 'repetition', 'timestamp', 'status', 'message',
  'strategy', 'scenario', 'source', 'region_bytes', 'chunk_bytes', 'rtt_ms', 'rtt_measured_ms', 'latency',
  'cpus', 'handler_threads', 'faults', 'bytes_fetched', 'first_access_ns', 'total_ns', 'throughput_mibps',
  'fault_ns_p50', 'fault_ns_p99', 'fault_ns_max', 'fault_ns_mean', 'fault_ns_cdf', 'fetch_ns_p50', 'install_ns_p50',
  'prefill_ns', 'verified', 'repeat', 'bench_mean_ns', 'bench_p99_ns', 'bench_rme_pct', 'bench_samples',
  'kernel', 'cpu_model', 'privileges', 'uffd_path', 'uffd_features', 'commit',
] as const;
