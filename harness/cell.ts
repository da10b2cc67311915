// What one benchmark cell is: its parameters, their validation, and the
// native region spec they become.
import { availableParallelism, freemem } from 'node:os';
import { UsageError } from './errors.js';

export const TRACKERS = ['uffd-wp', 'uffd-wp-async', 'mprotect', 'soft-dirty', 'none'] as const;
export const STRATEGIES = ['uffd', 'sigsegv', 'memory', 'disk', 'eager', ...TRACKERS] as const;
export const SCENARIOS = ['first-chunk', 'read-seq', 'read-random', 'write-track', 'migrate', 'read-zipf', 'read-sparse'] as const;
export const PATTERNS = ['seq', 'random', 'hot'] as const;
export const SOURCES = ['local', 'remote'] as const;
export const HUGE = ['none', 'thp', 'hugetlb'] as const;
/** How uffd maps a fetched chunk: UFFDIO_COPY, UFFDIO_CONTINUE (memfd), UFFDIO_MOVE (populated mirror). */
export const UFFD_INSTALLS = ['copy', 'continue', 'move'] as const;
export type UffdInstall = (typeof UFFD_INSTALLS)[number];
/** none, ahead:N, adaptive[:N], background, criu (native/src/prefetch.h). */
export const PREFETCH_RE = /^(none|background|criu|ahead:[1-9]\d{0,7}|adaptive(:[1-9]\d{0,7})?)$/;
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
  /** How RTT is emulated: a per-request delay in the embedded server (default),
   * tc netem on a veth link into a namespace the harness makes, or client-delay:
   * the C tcp source holds each answer until its request's send time + RTT +
   * its transfer time (native/src/source_tcp.c; precise where the server's
   * delay is not on this VM: `faultlab calibrate`). */
  latency?: (typeof LATENCIES)[number];
  diskDir?: string;
  /** Tests only: flip one byte of the local source at this offset. */
  corrupt?: number;
  /** write-track and migrate (harness/write-track.ts, harness/migrate.ts). */
  pattern?: (typeof PATTERNS)[number];
  writeFraction?: number;
  intervals?: number;
  /** migrate: the source's tracker (the strategy is the destination's pull strategy). */
  tracker?: (typeof TRACKERS)[number];
  /** Tests only: write-track writes one chunk the tracker cannot see. */
  injectUntracked?: boolean;
  /** Beyond the thesis (harness/beyond.ts): prefetch policy and its requests
   * in flight and connections, application threads, access-pattern knobs,
   * sigsegv's VMA span, huge pages. Absent: the native defaults. */
  prefetch?: string;
  depth?: number;
  pfConns?: number;
  appThreads?: number;
  zipfS?: number;
  touchFraction?: number;
  vmaSpan?: number | 'auto';
  huge?: (typeof HUGE)[number];
  uffdInstall?: UffdInstall;
}

export const LATENCIES = ['server-delay', 'netem', 'client-delay'] as const;

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
  if (Number.isNaN(p.rttMs)) throw new UsageError('--rtt needs a number of ms from 0 to 10000');
  if (!Number.isFinite(p.rttMs) || p.rttMs < 0 || p.rttMs > 10_000) throw new UsageError(`rtt ${p.rttMs} ms is out of range (0 to 10000)`);
  if (!Number.isInteger(p.repeat) || p.repeat < 1 || p.repeat > 100_000) throw new UsageError(`repeat ${p.repeat} must be a whole number from 1`);
  if (!Number.isInteger(p.handlerThreads) || p.handlerThreads < 1 || p.handlerThreads > 16) throw new UsageError('handler threads must be 1 to 16');
  if (p.cpus === 'split' && availableParallelism() < 2) throw new UsageError('cpus=split needs at least 2 CPUs');
  if (p.rttMs > 0 && p.source !== 'remote' && usesSource(p.strategy)) throw new UsageError('--rtt needs --source remote (the local source has no network)');
  if (!Number.isInteger(p.fetchTimeoutMs) || p.fetchTimeoutMs < 1) throw new UsageError('fetch timeout must be a positive whole number of ms');
  if (p.latency === 'netem' && (p.source !== 'remote' || p.remote)) throw new UsageError('--latency netem needs --source remote and no --remote (it starts its own server behind a delayed link)');
  if (p.latency === 'client-delay' && p.source !== 'remote') throw new UsageError('--latency client-delay needs --source remote');
  if (p.remote !== undefined && !/^[^:\s]+:\d{1,5}$/.test(p.remote)) throw new UsageError(`bad --remote '${p.remote}': use HOST:PORT`);
  validatePush(p);
  validateBeyond(p);
  return p;
}

/** Prefetch and the other knobs of issue 6; prefetch and VMA span only mean something to uffd and sigsegv. */
function validateBeyond(p: CellParams): void {
  const lazy = p.strategy === 'uffd' || p.strategy === 'sigsegv';
  if (p.prefetch !== undefined && !PREFETCH_RE.test(p.prefetch)) throw new UsageError(`bad prefetch '${p.prefetch}' (none, ahead:N, adaptive, adaptive:N, background, criu)`);
  if (p.prefetch !== undefined && p.prefetch !== 'none' && !lazy) throw new UsageError(`--prefetch is for uffd and sigsegv, not ${p.strategy}`);
  if (p.depth !== undefined && (!Number.isInteger(p.depth) || p.depth < 1 || p.depth > 1024)) throw new UsageError(`depth ${p.depth} must be a whole number from 1 to 1024`);
  if (p.pfConns !== undefined && (!Number.isInteger(p.pfConns) || p.pfConns < 1 || p.pfConns > 8)) throw new UsageError(`prefetch connections ${p.pfConns} must be 1 to 8`);
  if (p.appThreads !== undefined && (!Number.isInteger(p.appThreads) || p.appThreads < 1 || p.appThreads > 16)) throw new UsageError('app threads must be 1 to 16');
  if (p.appThreads !== undefined && p.appThreads > 1 && p.scenario === 'first-chunk') throw new UsageError('first-chunk is one access: --app-threads must be 1');
  if (p.zipfS !== undefined && !(p.zipfS >= 0 && p.zipfS <= 10)) throw new UsageError(`zipf s ${p.zipfS} must be from 0 to 10`);
  if (p.touchFraction !== undefined && !(p.touchFraction > 0 && p.touchFraction <= 1)) throw new UsageError(`touch fraction ${p.touchFraction} must be in (0, 1]`);
  if (p.vmaSpan !== undefined && p.vmaSpan !== 'auto' && !(Number.isInteger(p.vmaSpan) && p.vmaSpan >= 1)) throw new UsageError(`vma span ${p.vmaSpan} must be auto or a whole number of chunks from 1`);
  if (p.vmaSpan !== undefined && p.strategy !== 'sigsegv') throw new UsageError('--vma-span is for sigsegv (the strategy that splits its mapping)');
  if (p.huge !== undefined) oneOf(HUGE, p.huge, 'huge page mode');
  if (p.uffdInstall !== undefined && p.strategy !== 'uffd') throw new UsageError('--uffd-install is for uffd');
  if (p.uffdInstall !== undefined) oneOf(UFFD_INSTALLS, p.uffdInstall, 'uffd install');
  if (p.uffdInstall === 'move' && p.huge === 'hugetlb') throw new UsageError('--uffd-install move moves small anonymous pages: use --huge none or thp, or --uffd-install copy|continue for hugetlb');
}

/** The native run spec: the workload and its knobs. */
export function runSpec(p: CellParams): string {
  const parts = [`workload=${p.scenario}`, `seed=${p.seed}`];
  if (p.scenario === 'read-zipf' && p.zipfS !== undefined) parts.push(`zipf_s=${p.zipfS}`);
  if (p.scenario === 'read-sparse' && p.touchFraction !== undefined) parts.push(`touch_fraction=${p.touchFraction}`);
  if (p.appThreads !== undefined) parts.push(`app_threads=${p.appThreads}`);
  return parts.join(' ');
}

/** Trackers run write-track only; migrate pulls with uffd or sigsegv from a remote. */
function validatePush(p: CellParams): void {
  const tracker = (TRACKERS as readonly string[]).includes(p.strategy);
  if (p.scenario === 'write-track' && !tracker) throw new UsageError(`write-track needs a tracker strategy (${TRACKERS.join(', ')}), not ${p.strategy}`);
  if (p.scenario !== 'write-track' && tracker) throw new UsageError(`${p.strategy} is a tracker: use it with --scenario write-track (or as migrate's --tracker)`);
  if (p.scenario === 'migrate' && p.strategy !== 'uffd' && p.strategy !== 'sigsegv') throw new UsageError(`migrate's destination pulls with uffd or sigsegv, not ${p.strategy}`);
  if (p.scenario === 'migrate' && p.source !== 'remote') throw new UsageError('migrate needs --source remote (the destination\'s store is the chunk server)');
  if (p.pattern !== undefined) oneOf(PATTERNS, p.pattern, 'pattern');
  if (p.tracker !== undefined) oneOf(TRACKERS, p.tracker, 'tracker');
  if (p.writeFraction !== undefined && !(p.writeFraction > 0 && p.writeFraction <= 1)) throw new UsageError(`write fraction ${p.writeFraction} must be in (0, 1]`);
  if (p.intervals !== undefined && (!Number.isInteger(p.intervals) || p.intervals < 1 || p.intervals > 100_000)) throw new UsageError(`intervals ${p.intervals} must be a whole number from 1 to 100000`);
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
    if (remote && p.latency === 'client-delay') parts.push(`client_rtt_us=${Math.round(p.rttMs * 1000)}`);
  }
  if (p.diskDir) parts.push(`disk_dir=${p.diskDir}`);
  if (p.corrupt !== undefined) parts.push(`corrupt=${p.corrupt}`);
  if (p.prefetch !== undefined) parts.push(`prefetch=${p.prefetch}`);
  if (p.depth !== undefined) parts.push(`depth=${p.depth}`);
  if (p.pfConns !== undefined) parts.push(`pf_conns=${p.pfConns}`);
  if (p.vmaSpan !== undefined) parts.push(`vma_span=${p.vmaSpan}`);
  if (p.huge !== undefined) parts.push(`huge=${p.huge}`);
  if (p.uffdInstall !== undefined) parts.push(`uffd_install=${p.uffdInstall}`);
  return parts.join(' ');
}
