// Issue 6's knobs in one place (prefetch, depth, prefetch connections, app
// threads, zipf s, touch fraction, VMA span, huge pages), so bench, the matrix
// and the runner each add them with one call.
import type { Argv } from 'yargs';
import { HUGE, PREFETCH_RE, UFFD_INSTALLS, type CellParams } from './cell.js';
import { UsageError } from './errors.js';

type Beyond = Pick<CellParams, 'prefetch' | 'depth' | 'pfConns' | 'appThreads' | 'zipfS' | 'touchFraction' | 'vmaSpan' | 'huge' | 'uffdInstall'>;

/** `faultlab bench` options. */
export function beyondOptions<T>(y: Argv<T>) {
  return y
    .option('prefetch', { type: 'string', describe: 'uffd/sigsegv: none, ahead:N, adaptive[:N], background, criu (default none)' })
    .option('depth', { type: 'number', describe: 'prefetch READs in flight (default 16)' })
    .option('pf-conns', { type: 'number', describe: 'prefetch connections the depth is spread over (default one per 16 of depth)' })
    .option('app-threads', { type: 'number', describe: 'application threads faulting at once, each on its own share (default 1)' })
    .option('zipf-s', { type: 'number', describe: 'read-zipf: skew of the hot set (0 = uniform, default 1)' })
    .option('touch-fraction', { type: 'number', describe: 'read-sparse: share of the chunks touched (default 0.1)' })
    .option('vma-span', { type: 'string', describe: 'sigsegv: chunks opened per miss, or auto (fits vm.max_map_count); default 1' })
    .option('huge', { choices: HUGE, describe: 'pages behind the region: none, thp (MADV_HUGEPAGE), hugetlb (needs vm.nr_hugepages)' })
    .option('uffd-install', {
      choices: UFFD_INSTALLS,
      describe: 'uffd: UFFDIO_COPY (default); memfd + MINOR faults + UFFDIO_CONTINUE; or UFFDIO_MOVE from a mirror populated at setup (Linux 6.8+)',
    });
}

function vmaSpan(v: unknown): CellParams['vmaSpan'] {
  if (v === undefined) return undefined;
  if (v === 'auto') return 'auto';
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`bad --vma-span '${v}': auto or a whole number of chunks`);
  return n;
}

/** bench argv -> params (undefined where not given). */
export function beyondFromArgv(a: Record<string, unknown>): Beyond {
  return {
    prefetch: a.prefetch as string | undefined,
    depth: a.depth as number | undefined,
    pfConns: a['pf-conns'] as number | undefined,
    appThreads: a['app-threads'] as number | undefined,
    zipfS: a['zipf-s'] as number | undefined,
    touchFraction: a['touch-fraction'] as number | undefined,
    vmaSpan: vmaSpan(a['vma-span']),
    huge: a.huge as CellParams['huge'],
    uffdInstall: a['uffd-install'] as CellParams['uffdInstall'],
  };
}

/** The child's bench flags for a matrix cell. */
export function beyondArgs(p: CellParams): string[] {
  const out: string[] = [];
  const flags: [string, unknown][] = [
    ['--prefetch', p.prefetch], ['--depth', p.depth], ['--pf-conns', p.pfConns], ['--app-threads', p.appThreads],
    ['--zipf-s', p.zipfS], ['--touch-fraction', p.touchFraction], ['--vma-span', p.vmaSpan], ['--huge', p.huge],
    ['--uffd-install', p.uffdInstall],
  ];
  for (const [flag, v] of flags) if (v !== undefined) out.push(flag, String(v));
  return out;
}

// Matrix keys (scenarios/*.json), each an axis.
type Check = (v: unknown) => string | null;
const int = (min: number, max: number): Check => (v) => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `must be a whole number from ${min} to ${max}`);
export const BEYOND_AXES: Record<string, Check> = {
  prefetch: (v) => (typeof v === 'string' && PREFETCH_RE.test(v) ? null : 'must be none, ahead:N, adaptive, adaptive:N, background or criu'),
  depth: int(1, 1024),
  pf_conns: int(1, 8),
  app_threads: int(1, 16),
  zipf_s: (v) => (typeof v === 'number' && v >= 0 && v <= 10 ? null : 'must be a number from 0 to 10'),
  touch_fraction: (v) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'must be a number in (0, 1]'),
  vma_span: (v) => (v === 'auto' || (Number.isInteger(v) && (v as number) >= 1) ? null : 'must be auto or a whole number from 1'),
  huge: (v) => ((HUGE as readonly unknown[]).includes(v) ? null : `must be one of ${HUGE.join(', ')}`),
  uffd_install: (v) => ((UFFD_INSTALLS as readonly unknown[]).includes(v) ? null : `must be ${UFFD_INSTALLS.join(', ')}`),
};

/** One expanded combination -> params. */
export function beyondFromCombo(c: Record<string, unknown>): Beyond {
  return {
    prefetch: c.prefetch as string | undefined,
    depth: c.depth as number | undefined,
    pfConns: c.pf_conns as number | undefined,
    appThreads: c.app_threads as number | undefined,
    zipfS: c.zipf_s as number | undefined,
    touchFraction: c.touch_fraction as number | undefined,
    vmaSpan: c.vma_span as CellParams['vmaSpan'],
    huge: c.huge as CellParams['huge'],
    uffdInstall: c.uffd_install as CellParams['uffdInstall'],
  };
}

/** Cell-id parts: only cells that set one of these add them, so older ids stay stable. */
export function beyondKey(p: CellParams): unknown[] {
  const v = [p.prefetch, p.depth, p.pfConns, p.appThreads, p.zipfS, p.touchFraction, p.vmaSpan, p.huge, p.uffdInstall];
  return v.some((x) => x !== undefined) ? ['beyond', ...v] : [];
}

/** The knobs a cell sets beyond the thesis's, by their runs.csv column (set ones only). */
export function beyondColumns(p: CellParams): Record<string, string | number> {
  const cols: [string, string | number | undefined][] = [
    ['prefetch', p.prefetch], ['depth', p.depth], ['pf_conns', p.pfConns], ['app_threads', p.appThreads], ['zipf_s', p.zipfS],
    ['touch_fraction', p.touchFraction], ['vma_span', p.vmaSpan], ['huge', p.huge], ['uffd_install', p.uffdInstall],
  ];
  return Object.fromEntries(cols.filter(([, v]) => v !== undefined)) as Record<string, string | number>;
}

/** The same knobs as `key=value` words for a progress line. */
export function beyondLabel(p: CellParams): string {
  return Object.entries(beyondColumns(p)).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** --filter getters. */
export const BEYOND_FILTERS: Record<string, (p: CellParams) => string | number> = {
  prefetch: (p) => p.prefetch ?? 'none',
  depth: (p) => p.depth ?? 16,
  app_threads: (p) => p.appThreads ?? 1,
  touch_fraction: (p) => p.touchFraction ?? '',
  huge: (p) => p.huge ?? 'none',
  uffd_install: (p) => (p.strategy === 'uffd' ? (p.uffdInstall ?? 'copy') : 'none'), // as the rows say
};
