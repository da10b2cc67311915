// Every parameter of a benchmark cell, declared once (PARAMS): its default,
// checks, bench flag and help, matrix key, runs.csv column, native spec key and
// part of the cell id. bench's options (commands/cell-options.ts), the matrix
// expander, cell ids and --filter (matrix.ts), the runner's child arguments,
// progress labels and failed rows (runner.ts), and the native specs and cell
// checks (cell.ts) are all read from it. Rules that tie parameters together
// follow the table (RULES).
import { availableParallelism, freemem } from 'node:os';
import { UsageError } from './errors.js';
import { remoteError } from './remote.js';
import { choice, isFraction, isInt, isNum, number, onOff, size, text, whole, type Check, type Kind } from './param-kinds.js';
import { formatSize } from './sizes.js';

export const TRACKERS = ['uffd-wp', 'uffd-wp-async', 'mprotect', 'soft-dirty', 'none'] as const;
export const STRATEGIES = ['uffd', 'sigsegv', 'memory', 'disk', 'eager', ...TRACKERS] as const;
export const SCENARIOS = ['first-chunk', 'read-seq', 'read-random', 'write-track', 'migrate', 'read-zipf', 'read-sparse', 'write-random'] as const;
export const PATTERNS = ['seq', 'random', 'hot'] as const;
export const SOURCES = ['local', 'remote'] as const;
export const HUGE = ['none', 'thp', 'hugetlb'] as const;
/** How uffd maps a fetched chunk: UFFDIO_COPY, UFFDIO_CONTINUE (memfd), UFFDIO_MOVE (populated mirror). */
export const UFFD_INSTALLS = ['copy', 'continue', 'move'] as const;
/** Where uffd's handler runs: threads of the application, or a process of its own the uffd is sent to (SCM_RIGHTS). */
export const HANDLERS = ['thread', 'process'] as const;
/** none, ahead:N, adaptive[:N], background, criu (native/src/prefetch.h). */
export const MIGRATE_MODES = ['precopy', 'postcopy', 'hybrid'] as const;
export const PREFETCH_RE = /^(none|background|criu|ahead:[1-9]\d{0,7}|adaptive(:[1-9]\d{0,7})?)$/;
export const CPUS = ['same', 'split', 'free'] as const;
/** Eviction policies past --resident-limit (native/src/evict/). */
export const EVICTS = ['fifo', 'clock'] as const;
export const LATENCIES = ['server-delay', 'netem', 'client-delay', 'nbdkit-delay'] as const;

export type Strategy = (typeof STRATEGIES)[number];
export type Scenario = (typeof SCENARIOS)[number];
export type UffdInstall = (typeof UFFD_INSTALLS)[number];

export interface CellParams {
  strategy: Strategy;
  scenario: Scenario;
  source: (typeof SOURCES)[number];
  rttMs: number;
  regionBytes: number;
  chunkBytes: number;
  cpus: (typeof CPUS)[number];
  handlerThreads: number;
  seed: number;
  repeat: number;
  fetchTimeoutMs: number;
  /** An NBD server, nbd://HOST:PORT[/EXPORT] or HOST:PORT; absent: bench starts one on loopback. */
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
  /** migrate: pre-copy's stop rule and the destination's pull (harness/migrate.ts
   * holds their defaults: 300 ms as QEMU, 8 rounds, background). */
  migrateMode?: (typeof MIGRATE_MODES)[number];
  postcopyAfter?: number;
  downtimeLimitMs?: number;
  maxRounds?: number;
  destPrefetch?: string;
  /** Tests only: write-track writes one chunk the tracker cannot see. */
  injectUntracked?: boolean;
  /** The design space beyond the thesis: prefetch policy and its requests in
   * flight and connections, application threads, access-pattern knobs,
   * sigsegv's VMA span, huge pages, uffd's install ioctl. Absent: the native defaults. */
  prefetch?: string;
  depth?: number;
  pfConns?: number;
  appThreads?: number;
  zipfS?: number;
  touchFraction?: number;
  vmaSpan?: number | 'auto';
  huge?: (typeof HUGE)[number];
  uffdInstall?: UffdInstall;
  /** uffd's handler: threads in the application (absent: the default) or a handler process. */
  handler?: (typeof HANDLERS)[number];
  /** A bounded resident set (native/src/core/resident.h): at most this many
   * bytes resident, evicted by the policy past it. Absent: no limit. */
  residentLimit?: number;
  evict?: (typeof EVICTS)[number];
}

/** Which part of the cell id a parameter is in (matrix.ts cellId): the cell's
 * own part, always hashed; or push / migrate / design-space / latency / handler /
 * resident, hashed only for cells that set one of the part's parameters, so ids
 * from before a part existed stay the same (migrate cells hash theirs always: matrix.ts). */
export type IdPart = 'cell' | 'push' | 'migrate' | 'design-space' | 'latency' | 'handler' | 'resident';

// Method syntax on purpose: a Param<number> is then usable where any param is.
export interface Param<T> {
  kind: Kind<T>;
  /** The value when not given: in bench, in matrices and in DEFAULTS. Absent: the native default (or required). */
  default?: T;
  /** bench's --flag (kebab-case) and its help text. */
  flag: string;
  help: string;
  /** bench demands it. */
  required?: true;
  /** bench's default where a cell has none (matrix cells leave it to the runner). */
  flagDefault?: T;
  /** Tests only: left out of --help. */
  hidden?: true;
  /** Matrix key (snake_case, scenarios/*.json): an axis, or (perGroup) one value per group. Check: the kind's unless given. */
  matrix?: { key: string; perGroup?: true; check?: Check };
  /** runs.csv column (harness/columns.ts). */
  column?: string;
  /** Native spec key: region spec (fl_region_create) or run spec (fl_run), as native/include/faultlab.h names it; `when`: only for such cells. */
  spec?: { region?: string; run?: string; when?(p: CellParams): boolean };
  id?: IdPart;
  /** A cell's check of this value alone: null, or the message. The kind's unless given. */
  check?(v: T): string | null;
  /** --filter under the matrix key: the value itself, the value an unset one counts as, or a getter. */
  filter?: true | { unset: string | number } | ((p: CellParams) => string | number);
  /** A word of a cell's progress line: the value, column=value, or its own. */
  label?: 'value' | 'column' | ((v: T, p: CellParams) => string);
}

/** One entry per CellParams field, in the order matrices expand their axes and cell ids hash them. */
export type ParamTable = { [K in keyof CellParams]-?: Param<NonNullable<CellParams[K]>> };

/** Strategies that read their contents from a source (the others hold them locally). */
export const usesSource = (s: Strategy): boolean => s !== 'memory' && s !== 'disk';

/** sigsegv's span: a whole number of chunks, or auto. */
const vmaSpan: Kind<number | 'auto'> = {
  yargs: { type: 'string' },
  fromFlag: (v) => {
    if (v === undefined) return undefined;
    if (v === 'auto') return 'auto';
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new UsageError(`bad --vma-span '${v}': auto or a whole number of chunks`);
    return n;
  },
  fromMatrix: (v) => v as number | 'auto',
  fromFilter: (t) => t,
  shown: (v) => v,
};

export const PARAMS: ParamTable = {
  // The thesis's cell: every cell has these, and every cell id hashes them.
  strategy: {
    kind: choice(STRATEGIES, 'strategy'),
    flag: 'strategy',
    required: true,
    help: 'fault-handling strategy or baseline',
    matrix: { key: 'strategy' },
    column: 'strategy',
    spec: { region: 'strategy' },
    id: 'cell',
    filter: true,
    label: 'value',
  },
  scenario: {
    kind: choice(SCENARIOS, 'scenario'),
    default: 'read-seq',
    flag: 'scenario',
    help: 'workload',
    matrix: { key: 'scenario' },
    column: 'scenario',
    spec: { run: 'workload' },
    id: 'cell',
    filter: true,
    label: 'value',
  },
  source: {
    // spec: source=local, or source=tcp host= port= (cell.ts: from where the server is)
    kind: choice(SOURCES, 'source'),
    default: 'local',
    flag: 'source',
    help: 'where chunks come from',
    matrix: { key: 'source' },
    column: 'source',
    id: 'cell',
    filter: true,
    label: (v, p) => (usesSource(p.strategy) ? v : ''),
  },
  rttMs: {
    // spec: client_rtt_us with the source keys under --latency client-delay (cell.ts)
    kind: number,
    default: 0,
    flag: 'rtt',
    help: 'emulated round trip per request, ms (remote)',
    matrix: { key: 'rtt', check: isNum(0, 10_000) },
    column: 'rtt_ms',
    id: 'cell',
    filter: true,
    label: (v) => `rtt=${v}ms`,
    check: (v) =>
      Number.isNaN(v)
        ? '--rtt needs a number of ms from 0 to 10000'
        : !Number.isFinite(v) || v < 0 || v > 10_000
          ? `rtt ${v} ms is out of range (0 to 10000)`
          : null,
  },
  regionBytes: {
    kind: size('region'),
    default: 64 << 20,
    flag: 'region',
    help: 'region size (4096, 4KiB, 64MiB, 1GiB)',
    matrix: { key: 'region' },
    column: 'region_bytes',
    spec: { region: 'region' },
    id: 'cell',
    filter: true,
    label: (v) => `region=${formatSize(v)}`,
    check: (v) => (v <= 0 ? 'region of 0 bytes: give a size such as 64MiB' : null),
  },
  chunkBytes: {
    kind: size('chunk'),
    default: 4096,
    flag: 'chunk',
    help: 'bytes fetched per fault, a page multiple',
    matrix: { key: 'chunk' },
    column: 'chunk_bytes',
    spec: { region: 'chunk' },
    id: 'cell',
    filter: true,
    label: (v) => `chunk=${formatSize(v)}`,
    check: (v) => (v <= 0 || v % 4096 ? `chunk ${v} bytes is not a multiple of the page size (4096 bytes)` : null),
  },
  cpus: {
    kind: choice(CPUS, 'cpus placement'),
    default: 'same',
    flag: 'cpus',
    help: 'workload and handler threads on one core, two, or unpinned',
    matrix: { key: 'cpus' },
    column: 'cpus',
    spec: { region: 'cpus' },
    id: 'cell',
    filter: true,
    label: 'column',
  },
  handlerThreads: {
    kind: number,
    default: 1,
    flag: 'handler-threads',
    help: 'uffd handler threads',
    matrix: { key: 'handler_threads', check: isInt(1, 16) },
    column: 'handler_threads',
    spec: { region: 'handler_threads' },
    id: 'cell',
    filter: true,
    check: (v) => (whole(v, 1, 16) ? null : 'handler threads must be 1 to 16'),
  },
  seed: {
    kind: number,
    default: 1,
    flag: 'seed',
    help: 'contents and random order seed',
    matrix: { key: 'seed', check: isInt(0, 2 ** 31) },
    spec: { region: 'seed', run: 'seed' },
    id: 'cell',
  },
  repeat: {
    kind: number,
    default: 1,
    flag: 'repeat',
    help: 'fresh regions to measure; figures are medians',
    matrix: { key: 'repeat', perGroup: true, check: isInt(1, 100_000) },
    column: 'repeat',
    id: 'cell',
    check: (v) => (whole(v, 1, 100_000) ? null : `repeat ${v} must be a whole number from 1`),
  },
  fetchTimeoutMs: {
    kind: number,
    default: 5000,
    flag: 'fetch-timeout',
    help: 'ms before a fetch fails the run',
    matrix: { key: 'fetch_timeout', perGroup: true, check: isInt(1, 3_600_000) },
    spec: { region: 'fetch_timeout_ms' },
    check: (v) => (Number.isInteger(v) && v >= 1 ? null : 'fetch timeout must be a positive whole number of ms'),
  },

  // bench only (the runner passes --remote itself, and --latency unless a cell sets it).
  remote: {
    // spec: host= port= [export=] (cell.ts, remote.ts)
    kind: text,
    flag: 'remote',
    help: 'an NBD server, nbd://HOST:PORT[/EXPORT] or HOST:PORT: `faultlab serve`, nbdkit, qemu-nbd... (default: start one on loopback)',
    check: remoteError,
  },
  latency: {
    // runs.csv's latency column says what a run used (none when local, external for --remote): bench writes it.
    kind: choice(LATENCIES, 'latency'),
    flag: 'latency',
    flagDefault: 'server-delay',
    help:
      'RTT emulation: per-request server delay, tc netem on a veth link (where the kernel has netem), client-delay (the C client holds each answer until due), ' +
      "or nbdkit-delay (nbdkit's delay filter in front of `nbdkit file` serving the region's image)",
    // A matrix axis so one run compares methods (scenarios/latency-methods.json); unset, a cell takes the run's --latency.
    matrix: { key: 'latency' },
    id: 'latency',
    filter: { unset: 'server-delay' },
    label: 'value',
  },
  diskDir: { kind: text, flag: 'disk-dir', help: 'folder for the disk baseline file (default /tmp)', spec: { region: 'disk_dir' } },
  corrupt: { kind: size('corrupt offset'), flag: 'corrupt', hidden: true, help: 'tests: flip one source byte at this offset', spec: { region: 'corrupt' } },

  // Push: write-track and migrate. Their native keys (tracker, pattern,
  // write_fraction, intervals) go into specs of their own, with each scenario's
  // defaults (write-track.ts, migrate.ts).
  pattern: {
    kind: choice(PATTERNS, 'pattern'),
    flag: 'pattern',
    help: 'write-track/migrate: which chunks each interval writes (default random; migrate: hot)',
    matrix: { key: 'pattern' },
    column: 'pattern',
    id: 'push',
    filter: { unset: '' },
  },
  writeFraction: {
    kind: number,
    flag: 'write-fraction',
    help: 'write-track/migrate: writes per interval as a fraction of the chunks (default 0.05; migrate: 0.01)',
    matrix: { key: 'write_fraction', check: isFraction },
    column: 'write_fraction',
    id: 'push',
    check: (v) => (v > 0 && v <= 1 ? null : `write fraction ${v} must be in (0, 1]`),
  },
  intervals: {
    kind: number,
    flag: 'intervals',
    help: 'write-track: write/collect/push intervals, counted in writes not time (default 4)',
    matrix: { key: 'intervals', check: isInt(1, 100_000) },
    column: 'intervals',
    id: 'push',
    check: (v) => (whole(v, 1, 100_000) ? null : `intervals ${v} must be a whole number from 1 to 100000`),
  },
  tracker: {
    kind: choice(TRACKERS, 'tracker'),
    flag: 'tracker',
    help: "migrate: the source's dirty tracker (default uffd-wp)",
    matrix: { key: 'tracker' },
    column: 'tracker',
    id: 'push',
    filter: { unset: '' },
  },
  // migrate's mode, stop rule and pull: an id part of their own, so write-track ids stay as they were.
  migrateMode: {
    kind: choice(MIGRATE_MODES, 'migrate mode'),
    flag: 'mode',
    help: 'migrate: precopy (rounds, then stop and copy), postcopy (stop at once; the destination pulls from the source), hybrid (postcopy after --postcopy-after rounds); default precopy',
    matrix: { key: 'mode' },
    column: 'migrate_mode',
    id: 'migrate',
    filter: { unset: 'precopy' },
    label: 'column',
  },
  postcopyAfter: {
    kind: number,
    flag: 'postcopy-after',
    help: 'migrate --mode hybrid: pre-copy rounds before the switch to post-copy (default 1)',
    matrix: { key: 'postcopy_after', check: isInt(1, 64) },
    column: 'postcopy_after',
    id: 'migrate',
    check: (v) => (whole(v, 1, 64) ? null : `postcopy after ${v} must be a whole number of rounds from 1 to 64`),
  },
  downtimeLimitMs: {
    kind: number,
    flag: 'downtime-limit',
    help: 'migrate: pre-copy stops once the rest would be pushed within this many ms (default 300, as QEMU)',
    matrix: { key: 'downtime_limit', check: isInt(0, 3_600_000) },
    column: 'downtime_limit_ms',
    id: 'migrate',
    filter: { unset: 300 },
    check: (v) => (whole(v, 0, 3_600_000) ? null : `downtime limit ${v} must be a whole number of ms from 0 to 3600000`),
  },
  maxRounds: {
    kind: number,
    flag: 'max-rounds',
    help: 'migrate: at most this many pre-copy pushes, round 0 included (default 8)',
    matrix: { key: 'max_rounds', check: isInt(1, 64) },
    column: 'max_rounds',
    id: 'migrate',
    filter: { unset: 8 },
    check: (v) => (whole(v, 1, 64) ? null : `max rounds ${v} must be a whole number from 1 to 64`),
  },
  destPrefetch: {
    kind: text,
    flag: 'dest-prefetch',
    help: 'migrate: how the destination pulls what it has not touched: a prefetch policy (default background; none: bg threads touch every chunk)',
    matrix: {
      key: 'dest_prefetch',
      check: (v) => (typeof v === 'string' && PREFETCH_RE.test(v) ? null : 'must be none, ahead:N, adaptive, adaptive:N, background or criu'),
    },
    column: 'dest_prefetch',
    id: 'migrate',
    filter: { unset: 'background' },
    label: 'column',
    check: (v) => (PREFETCH_RE.test(v) ? null : `bad dest prefetch '${v}' (none, ahead:N, adaptive, adaptive:N, background, criu)`),
  },
  injectUntracked: { kind: onOff, flag: 'inject-untracked', hidden: true, help: 'tests: write-track writes one chunk the tracker cannot see' },

  // The design space beyond the thesis (issue 6): prefetch, threads, access patterns, VMA limit, huge pages, uffd's install.
  prefetch: {
    kind: text,
    flag: 'prefetch',
    help: 'uffd/sigsegv: none, ahead:N, adaptive[:N], background, criu (default none)',
    matrix: {
      key: 'prefetch',
      check: (v) => (typeof v === 'string' && PREFETCH_RE.test(v) ? null : 'must be none, ahead:N, adaptive, adaptive:N, background or criu'),
    },
    column: 'prefetch',
    spec: { region: 'prefetch' },
    id: 'design-space',
    filter: { unset: 'none' },
    label: 'column',
    check: (v) => (PREFETCH_RE.test(v) ? null : `bad prefetch '${v}' (none, ahead:N, adaptive, adaptive:N, background, criu)`),
  },
  depth: {
    kind: number,
    flag: 'depth',
    help: 'prefetch READs in flight (default 16)',
    matrix: { key: 'depth', check: isInt(1, 1024) },
    column: 'depth',
    spec: { region: 'depth' },
    id: 'design-space',
    filter: { unset: 16 },
    label: 'column',
    check: (v) => (whole(v, 1, 1024) ? null : `depth ${v} must be a whole number from 1 to 1024`),
  },
  pfConns: {
    kind: number,
    flag: 'pf-conns',
    help: 'prefetch connections the depth is spread over (default one per 16 of depth)',
    matrix: { key: 'pf_conns', check: isInt(1, 8) },
    column: 'pf_conns',
    spec: { region: 'pf_conns' },
    id: 'design-space',
    label: 'column',
    check: (v) => (whole(v, 1, 8) ? null : `prefetch connections ${v} must be 1 to 8`),
  },
  appThreads: {
    kind: number,
    flag: 'app-threads',
    help: 'application threads faulting at once, each on its own share (default 1)',
    matrix: { key: 'app_threads', check: isInt(1, 16) },
    column: 'app_threads',
    spec: { run: 'app_threads' },
    id: 'design-space',
    filter: { unset: 1 },
    label: 'column',
    check: (v) => (whole(v, 1, 16) ? null : 'app threads must be 1 to 16'),
  },
  zipfS: {
    kind: number,
    flag: 'zipf-s',
    help: 'read-zipf: skew of the hot set (0 = uniform, default 1)',
    matrix: { key: 'zipf_s', check: isNum(0, 10) },
    column: 'zipf_s',
    spec: { run: 'zipf_s', when: (p) => p.scenario === 'read-zipf' },
    id: 'design-space',
    label: 'column',
    check: (v) => (v >= 0 && v <= 10 ? null : `zipf s ${v} must be from 0 to 10`),
  },
  touchFraction: {
    kind: number,
    flag: 'touch-fraction',
    help: 'read-sparse: share of the chunks touched (default 0.1)',
    matrix: { key: 'touch_fraction', check: isFraction },
    column: 'touch_fraction',
    spec: { run: 'touch_fraction', when: (p) => p.scenario === 'read-sparse' },
    id: 'design-space',
    filter: { unset: '' },
    label: 'column',
    check: (v) => (v > 0 && v <= 1 ? null : `touch fraction ${v} must be in (0, 1]`),
  },
  vmaSpan: {
    kind: vmaSpan,
    flag: 'vma-span',
    help: 'sigsegv: chunks opened per miss, or auto (fits vm.max_map_count); default 1',
    matrix: { key: 'vma_span', check: (v) => (v === 'auto' || (Number.isInteger(v) && (v as number) >= 1) ? null : 'must be auto or a whole number from 1') },
    column: 'vma_span',
    spec: { region: 'vma_span' },
    id: 'design-space',
    label: 'column',
    check: (v) => (v === 'auto' || (Number.isInteger(v) && v >= 1) ? null : `vma span ${v} must be auto or a whole number of chunks from 1`),
  },
  huge: {
    kind: choice(HUGE, 'huge page mode'),
    flag: 'huge',
    help: 'pages behind the region: none, thp (MADV_HUGEPAGE), hugetlb (needs vm.nr_hugepages)',
    matrix: { key: 'huge' },
    column: 'huge',
    spec: { region: 'huge' },
    id: 'design-space',
    filter: { unset: 'none' },
    label: 'column',
  },
  uffdInstall: {
    kind: choice(UFFD_INSTALLS, 'uffd install'),
    flag: 'uffd-install',
    help: 'uffd: UFFDIO_COPY (default); memfd + MINOR faults + UFFDIO_CONTINUE; or UFFDIO_MOVE from a mirror populated at setup (Linux 6.8+)',
    matrix: { key: 'uffd_install', check: (v) => ((UFFD_INSTALLS as readonly unknown[]).includes(v) ? null : `must be ${UFFD_INSTALLS.join(', ')}`) },
    column: 'uffd_install',
    spec: { region: 'uffd_install' },
    id: 'design-space',
    label: 'column',
    filter: (p) => (p.strategy === 'uffd' ? (p.uffdInstall ?? 'copy') : 'none'), // as the rows say
  },

  // Issue 19: uffd's handler in a process of its own (native/src/strategies/uffd_handler_process.h).
  handler: {
    kind: choice(HANDLERS, 'handler'),
    flag: 'handler',
    help: 'uffd: handler threads in the application (default), or a handler process the uffd is sent to over a Unix socket (sigsegv has none: its handler runs on the faulting thread)',
    matrix: { key: 'handler' },
    column: 'handler',
    spec: { region: 'handler' },
    id: 'handler',
    label: 'column',
    filter: (p) => (p.strategy === 'uffd' ? (p.handler ?? 'thread') : 'none'), // as the rows say
  },
  // Regions larger than memory (issue 19): a bounded resident set.
  residentLimit: {
    kind: size('resident limit'),
    flag: 'resident-limit',
    help: 'uffd/sigsegv: bytes resident at most, a whole number of chunks; past it chunks are evicted (written back first if written). Default: no limit',
    matrix: { key: 'resident_limit' },
    column: 'resident_limit',
    spec: { region: 'resident_limit' },
    id: 'resident',
    filter: { unset: '' },
    label: (v) => `limit=${formatSize(v)}`,
    check: (v) => (v > 0 ? null : 'resident limit of 0 bytes: give a size such as 256MiB, or leave it out for no limit'),
  },
  evict: {
    kind: choice(EVICTS, 'evict policy'),
    flag: 'evict',
    help: 'with --resident-limit: which chunk goes, fifo (the oldest) or clock (second chance for a chunk referenced since); default fifo',
    matrix: { key: 'evict' },
    column: 'evict',
    spec: { region: 'evict' },
    id: 'resident',
    filter: { unset: '' },
    label: 'column',
  },
};

/** The table as [field, declaration] pairs, in its order. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const PARAM_LIST = Object.entries(PARAMS) as [keyof CellParams, Param<any>][];

/** Every parameter's default; strategy has none (every other field without a default is optional). */
export const DEFAULTS = Object.fromEntries(PARAM_LIST.filter(([, d]) => d.default !== undefined).map(([k, d]) => [k, d.default])) as Omit<
  CellParams,
  'strategy'
>;

const lazy = (p: CellParams) => p.strategy === 'uffd' || p.strategy === 'sigsegv';
const isTracker = (p: CellParams) => (TRACKERS as readonly string[]).includes(p.strategy);

/** Rules between parameters, checked in this order after each value's own check: null, or the message. */
export const RULES: ((p: CellParams) => string | null)[] = [
  (p) => (p.regionBytes % p.chunkBytes ? `region ${p.regionBytes} bytes is not a multiple of the chunk (${p.chunkBytes} bytes)` : null),
  // Region + its local source copy must fit in memory with room to spare.
  (p) => {
    // Under a resident limit only the limit is resident (and the local source's copy, if local).
    const need =
      p.residentLimit !== undefined ? p.residentLimit + (p.source === 'local' ? p.regionBytes : 0) : p.regionBytes * (usesSource(p.strategy) ? 2 : 1);
    const free = freemem();
    return need > free * 0.8 ? `region ${p.regionBytes} bytes needs about ${need} bytes, more than the memory available (${free} bytes free)` : null;
  },
  (p) => (p.cpus === 'split' && availableParallelism() < 2 ? 'cpus=split needs at least 2 CPUs' : null),
  (p) => (p.rttMs > 0 && p.source !== 'remote' && usesSource(p.strategy) ? '--rtt needs --source remote (the local source has no network)' : null),
  (p) =>
    p.latency === 'netem' && (p.source !== 'remote' || p.remote)
      ? '--latency netem needs --source remote and no --remote (it starts its own server behind a delayed link)'
      : null,
  (p) => (p.latency === 'client-delay' && p.source !== 'remote' ? '--latency client-delay needs --source remote' : null),
  (p) =>
    p.latency === 'nbdkit-delay' && (p.source !== 'remote' || p.remote)
      ? '--latency nbdkit-delay needs --source remote and no --remote (it starts its own nbdkit)'
      : null,
  (p) =>
    p.latency === 'nbdkit-delay' && !Number.isInteger(p.rttMs)
      ? `--latency nbdkit-delay takes whole ms (nbdkit's delay filter counts in ms), not --rtt ${p.rttMs}`
      : null,
  // Trackers run write-track only; migrate pulls with uffd or sigsegv from a remote.
  (p) => (p.scenario === 'write-track' && !isTracker(p) ? `write-track needs a tracker strategy (${TRACKERS.join(', ')}), not ${p.strategy}` : null),
  (p) => (p.scenario !== 'write-track' && isTracker(p) ? `${p.strategy} is a tracker: use it with --scenario write-track (or as migrate's --tracker)` : null),
  (p) => (p.scenario === 'migrate' && !lazy(p) ? `migrate's destination pulls with uffd or sigsegv, not ${p.strategy}` : null),
  (p) => (p.scenario === 'migrate' && p.source !== 'remote' ? "migrate needs --source remote (the destination's store is the chunk server)" : null),
  (p) =>
    (p.scenario === 'migrate' || p.scenario === 'write-track') && (p.handler === 'process' || p.residentLimit !== undefined)
      ? `${p.scenario} runs with uffd's handler threads and no resident limit (its trackers and pull work on the application's own region)`
      : null,
  (p) =>
    p.scenario !== 'migrate' && [p.migrateMode, p.postcopyAfter, p.downtimeLimitMs, p.maxRounds, p.destPrefetch].some((v) => v !== undefined)
      ? '--mode, --postcopy-after, --downtime-limit, --max-rounds and --dest-prefetch are for --scenario migrate'
      : null,
  (p) => (p.postcopyAfter !== undefined && p.migrateMode !== 'hybrid' ? '--postcopy-after is for --mode hybrid' : null),
  (p) =>
    p.migrateMode !== undefined && p.migrateMode !== 'precopy' && p.latency === 'netem'
      ? `--mode ${p.migrateMode}: the source serves the destination itself, outside the netem link; use --latency server-delay or client-delay`
      : null,
  (p) =>
    p.scenario === 'migrate' && p.prefetch !== undefined && p.prefetch !== 'none'
      ? "migrate: the destination's pull is --dest-prefetch (--prefetch is for the read scenarios)"
      : null,
  // Prefetch and the VMA span only mean something to the lazy strategies that have them.
  (p) => (p.prefetch !== undefined && p.prefetch !== 'none' && !lazy(p) ? `--prefetch is for uffd and sigsegv, not ${p.strategy}` : null),
  (p) => (p.appThreads !== undefined && p.appThreads > 1 && p.scenario === 'first-chunk' ? 'first-chunk is one access: --app-threads must be 1' : null),
  (p) => (p.vmaSpan !== undefined && p.strategy !== 'sigsegv' ? '--vma-span is for sigsegv (the strategy that splits its mapping)' : null),
  (p) => (p.uffdInstall !== undefined && p.strategy !== 'uffd' ? '--uffd-install is for uffd' : null),
  (p) =>
    p.handler === 'process' && p.strategy === 'sigsegv'
      ? "--handler process is for uffd: sigsegv's handler is a signal handler, which runs on the faulting thread, so it has no process of its own"
      : null,
  (p) => (p.handler !== undefined && p.strategy !== 'uffd' && p.strategy !== 'sigsegv' ? `--handler is for uffd, not ${p.strategy}` : null),
  (p) =>
    p.handler === 'process' && p.uffdInstall === 'move'
      ? "--handler process with --uffd-install move: UFFDIO_MOVE moves pages within the application's own memory, not from the handler process's; use copy or continue"
      : null,
  (p) =>
    p.residentLimit !== undefined && p.handler === 'process'
      ? "--resident-limit needs --handler thread: eviction drops pages in the application's own address space, which a handler process cannot do"
      : null,
  (p) =>
    p.residentLimit !== undefined && !lazy(p) ? `--resident-limit is for uffd and sigsegv (the strategies that fetch on faults), not ${p.strategy}` : null,
  (p) => (p.evict !== undefined && p.residentLimit === undefined ? '--evict needs --resident-limit (without a limit nothing is evicted)' : null),
  (p) =>
    p.residentLimit !== undefined && p.residentLimit % p.chunkBytes
      ? `resident limit ${p.residentLimit} bytes is not a multiple of the chunk (${p.chunkBytes} bytes)`
      : null,
  // Every chunk that may be in flight at once needs room: faulting threads, and prefetch's depth x 1 MiB requests
  // (native/src/core/resident.c, fl_resident_min_chunks).
  (p) => {
    if (p.residentLimit === undefined) return null;
    const inFlight = 32 + (p.prefetch && p.prefetch !== 'none' ? (p.depth ?? 16) * Math.max(1, Math.floor((1 << 20) / p.chunkBytes)) : 0);
    return p.residentLimit / p.chunkBytes < inFlight
      ? `resident limit ${p.residentLimit} bytes holds ${p.residentLimit / p.chunkBytes} chunks, fewer than the ${inFlight} that may be in flight at once: raise it to at least ${formatSize(inFlight * p.chunkBytes)}`
      : null;
  },
  (p) => (p.scenario === 'write-random' && !lazy(p) ? `write-random is for uffd and sigsegv, not ${p.strategy}` : null),
  (p) =>
    p.scenario === 'write-random' && p.appThreads !== undefined && p.appThreads > 1
      ? "write-random's second pass reads what its first wrote: --app-threads must be 1"
      : null,
  (p) =>
    p.uffdInstall === 'move' && p.huge === 'hugetlb'
      ? '--uffd-install move moves small anonymous pages: use --huge none or thp, or --uffd-install copy|continue for hugetlb'
      : null,
];
