// What one benchmark cell is: its parameters, their validation, and the
// native region spec they become.
import { availableParallelism, freemem } from 'node:os';
import { UsageError } from './errors.js';

export const STRATEGIES = ['uffd', 'sigsegv', 'memory', 'disk', 'eager'] as const;
export const SCENARIOS = ['first-chunk', 'read-seq', 'read-random'] as const;
export const SOURCES = ['local', 'remote'] as const;
export const CPUS = ['same', 'split', 'free'] as const;

export type Strategy = (typeof STRATEGIES)[number];
export type Scenario = (typeof SCENARIOS)[number];

export interface CellParams {
  strategy: Strategy;
  scenario: Scenario;
  source: (typeof SOURCES)[number];
  regionBytes: number;
  chunkBytes: number;
  rttMs: number;
  cpus: (typeof CPUS)[number];
  handlerThreads: number;
  repeat: number;
  seed: number;
  fetchTimeoutMs: number;
  /** HOST:PORT of a running chunk server; absent: bench starts one on loopback. */
  remote?: string;
  /** How RTT is emulated for an embedded remote: a per-request server delay
   * (default), or tc netem on a veth link into a namespace the harness makes. */
  latency?: 'server-delay' | 'netem';
  diskDir?: string;
  /** Tests only: flip one byte of the local source at this offset. */
  corrupt?: number;
}

export const DEFAULTS: Omit<CellParams, 'strategy' | 'scenario'> = {
  source: 'local',
  regionBytes: 64 << 20,
  chunkBytes: 4096,
  rttMs: 0,
  cpus: 'same',
  handlerThreads: 1,
  repeat: 1,
  seed: 1,
  fetchTimeoutMs: 5000,
};

/** Strategies that read their contents from a source (the others hold them locally). */
export const usesSource = (s: Strategy): boolean => s !== 'memory' && s !== 'disk';

function oneOf<T extends string>(list: readonly T[], v: unknown, what: string): T {
  if (!list.includes(v as T)) throw new UsageError(`unknown ${what} '${v}' (known: ${list.join(', ')})`);
  return v as T;
}

/** Checks everything that can be checked before anything runs. */
export function validateCell(p: CellParams): CellParams {
  oneOf(STRATEGIES, p.strategy, 'strategy');
  oneOf(SCENARIOS, p.scenario, 'scenario');
  oneOf(SOURCES, p.source, 'source');
  oneOf(CPUS, p.cpus, 'cpus placement');
  if (p.chunkBytes <= 0 || p.chunkBytes % 4096) throw new UsageError(`chunk ${p.chunkBytes} bytes is not a multiple of the page size (4096 bytes)`);
  if (p.regionBytes <= 0) throw new UsageError('region of 0 bytes: give a size such as 64MiB');
  if (p.regionBytes % p.chunkBytes) throw new UsageError(`region ${p.regionBytes} bytes is not a multiple of the chunk (${p.chunkBytes} bytes)`);
  // Region + its local source copy must fit in memory with room to spare.
  const need = p.regionBytes * (usesSource(p.strategy) ? 2 : 1);
  if (need > freemem() * 0.8) throw new UsageError(`region ${p.regionBytes} bytes needs about ${need} bytes, more than the memory available (${freemem()} bytes free)`);
  if (!Number.isFinite(p.rttMs) || p.rttMs < 0 || p.rttMs > 10_000) throw new UsageError(`rtt ${p.rttMs} ms is out of range (0 to 10000)`);
  if (!Number.isInteger(p.repeat) || p.repeat < 1 || p.repeat > 100_000) throw new UsageError(`repeat ${p.repeat} must be a whole number from 1`);
  if (!Number.isInteger(p.handlerThreads) || p.handlerThreads < 1 || p.handlerThreads > 16) throw new UsageError('handler threads must be 1 to 16');
  if (p.cpus === 'split' && availableParallelism() < 2) throw new UsageError('cpus=split needs at least 2 CPUs');
  if (p.rttMs > 0 && p.source !== 'remote' && usesSource(p.strategy)) throw new UsageError('--rtt needs --source remote (the local source has no network)');
  if (!Number.isInteger(p.fetchTimeoutMs) || p.fetchTimeoutMs < 1) throw new UsageError('fetch timeout must be a positive whole number of ms');
  if (p.latency === 'netem' && (p.source !== 'remote' || p.remote)) throw new UsageError('--latency netem needs --source remote and no --remote (it starts its own server behind a delayed link)');
  if (p.remote !== undefined && !/^[^:\s]+:\d{1,5}$/.test(p.remote)) throw new UsageError(`bad --remote '${p.remote}': use HOST:PORT`);
  return p;
}

/** The native library's region spec (see native/include/faultlab.h). */
export function regionSpec(p: CellParams, remote?: { host: string; port: number }): string {
  const parts = [
    `strategy=${p.strategy}`,
    `region=${p.regionBytes}`,
    `chunk=${p.chunkBytes}`,
    `seed=${p.seed}`,
    `handler_threads=${p.handlerThreads}`,
    `cpus=${p.cpus}`,
    `fetch_timeout_ms=${p.fetchTimeoutMs}`,
  ];
  if (usesSource(p.strategy)) {
    if (remote) parts.push('source=tcp', `host=${remote.host}`, `port=${remote.port}`);
    else parts.push('source=local');
  }
  if (p.diskDir) parts.push(`disk_dir=${p.diskDir}`);
  if (p.corrupt !== undefined) parts.push(`corrupt=${p.corrupt}`);
  return parts.join(' ');
}
