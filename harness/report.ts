// Human-readable output for one cell.
import type { Row } from './columns.js';

const us = (ns: unknown) => (typeof ns === 'number' ? `${(ns / 1000).toFixed(2)} us` : '-');

export function printSummary(s: Row): void {
  const lines: [string, string][] = [
    ['cell', `${s.strategy} ${s.scenario} source=${s.source} region=${s.region_bytes} chunk=${s.chunk_bytes} cpus=${s.cpus} rtt=${s.rtt_ms} ms`],
    ['repetitions', String(s.repeat)],
    ['verified', String(s.verified)],
    ['faults', String(s.faults)],
    ['first access', us(s.first_access_ns)],
    ['per access p50 / p99 / max', `${us(s.fault_ns_p50)} / ${us(s.fault_ns_p99)} / ${us(s.fault_ns_max)}`],
    ['fetch / install p50', `${us(s.fetch_ns_p50)} / ${us(s.install_ns_p50)}`],
    ['throughput', `${Number(s.throughput_mibps).toFixed(1)} MiB/s`],
  ];
  if (s.rtt_measured_ms !== null && s.rtt_measured_ms !== undefined) lines.push(['measured rtt', `${s.rtt_measured_ms} ms`]);
  if (s.bench_mean_ns !== null && s.bench_mean_ns !== undefined)
    lines.push(['tinybench mean / p99 / rme', `${us(s.bench_mean_ns)} / ${us(s.bench_p99_ns)} / ${s.bench_rme_pct}%`]);
  const w = Math.max(...lines.map(([k]) => k.length));
  for (const [k, v] of lines) console.log(`${k.padEnd(w)}  ${v}`);
}
