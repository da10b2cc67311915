// The paper's `design-space` section: the numbers behind the figures of the
// design space beyond the thesis (matrices `design-space` and `hugetlb`),
// so that the prose can point at a table instead of quoting a figure's
// values: prefetch policy against RTT, lazy against eager per touched share
// (with where the intervals decide which wins), application threads, chunk
// size, huge pages and the VMA limit. Medians with bootstrap intervals.
import { formatInterval, formatMibps, formatNs, formatRatio, mdTable } from './format.js';
import { okRows, type RunRow } from './runs.js';
import { bytes } from './slice.js';
import type { SectionInput } from './section-input.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, bootstrapRatio, groupBy, nRange, values, type Interval } from './stats.js';
import { matrixRows } from './study-sections.js';

type Get = (r: RunRow) => number | null;
const thr: Get = (r) => r.throughputMibps;
const totalMs: Get = (r) => r.totalNs;

/** The design-space runs' rows (matrix design-space, or beyond before its rename), or runs holding a prefetch or sparse-read row. */
export function designSpaceRows(input: Pick<SectionInput, 'rows' | 'runs'>): RunRow[] {
  const sig = (r: RunRow) =>
    (r.scenario === 'read-seq' || r.scenario === 'read-sparse' || r.scenario === 'read-random') &&
    ((r.designSpace?.prefetch ?? 'none') !== 'none' || r.designSpace?.touchFraction != null) &&
    (r.designSpace?.residentLimit ?? null) === null;
  const ids = new Set([...matrixRows(input, 'design-space', sig), ...matrixRows(input, 'beyond', sig)].map((r) => r.runId));
  return input.rows.filter((r) => ids.has(r.runId));
}

/** uffd's install (COPY, CONTINUE, MOVE) or sigsegv. */
export const installOf = (r: RunRow): string =>
  r.strategy === 'uffd'
    ? `uffd ${r.designSpace?.uffdInstall === 'continue' || r.designSpace?.uffdInstall === 'move' ? `UFFDIO_${r.designSpace.uffdInstall.toUpperCase()}` : 'UFFDIO_COPY'}`
    : r.strategy;
const INSTALL_ORDER = ['uffd UFFDIO_COPY', 'uffd UFFDIO_CONTINUE', 'uffd UFFDIO_MOVE', 'sigsegv'];
const POLICY_ORDER = ['none', 'ahead:64', 'adaptive', 'background', 'criu'];
const rank = (list: string[], x: string) => (list.indexOf(x) < 0 ? list.length : list.indexOf(x));
const policyOf = (r: RunRow) => r.designSpace?.prefetch ?? 'none';

/** One key per group, first-seen order. */
const byKey = (rows: RunRow[], key: (r: RunRow) => (string | number | null)[]) => [...groupBy(rows, (r) => key(r).join('\u0000')).values()];

const ciOf = (g: RunRow[], f: Get, fmt: (v: number | null) => string) => {
  const xs = values(g, f);
  return xs.length ? formatInterval(bootstrapMedian(xs), fmt) : '–';
};

/** A sweep as a table: one line per series, one column per swept value; every cell a median [95 % CI]. */
function sweepTable(
  series: RunRow[][],
  lead: { header: string[]; cells: (g: RunRow[]) => (string | number)[] },
  axis: { header: (v: number) => string; of: (r: RunRow) => number },
  f: Get,
  fmt: (v: number | null) => string,
): string {
  const xs = [...new Set(series.flat().map(axis.of))].sort((a, b) => a - b);
  return mdTable(
    [...lead.header, 'n', ...xs.map(axis.header)],
    series.map((g) => [
      ...lead.cells(g),
      nRange([...groupBy(g, (r) => String(axis.of(r))).values()].map((h) => values(h, f).length)).replace('n = ', ''),
      ...xs.map((x) =>
        ciOf(
          g.filter((r) => axis.of(r) === x),
          f,
          fmt,
        ),
      ),
    ]),
  );
}

const singleThread = (r: RunRow) =>
  !!r.designSpace &&
  r.designSpace.appThreads === 1 &&
  r.designSpace.huge === 'none' &&
  r.designSpace.handler !== 'process' &&
  (r.designSpace.residentLimit ?? null) === null;

export function prefetchTable(ds: RunRow[]): string | null {
  const sel = okRows(ds).filter(
    (r) => r.scenario === 'read-seq' && r.source === 'remote' && (r.strategy === 'uffd' || r.strategy === 'sigsegv') && singleThread(r),
  );
  const series = byKey(sel, (r) => [installOf(r), policyOf(r), r.regionBytes, r.chunkBytes, r.designSpace?.depth ?? null])
    .filter((g) => new Set(g.map((r) => r.rttMs)).size >= 3)
    .sort(
      (a, b) =>
        rank(INSTALL_ORDER, installOf(a[0])) - rank(INSTALL_ORDER, installOf(b[0])) ||
        a[0].chunkBytes - b[0].chunkBytes ||
        rank(POLICY_ORDER, policyOf(a[0])) - rank(POLICY_ORDER, policyOf(b[0])),
    );
  if (!series.some((g) => policyOf(g[0]) !== 'none')) return null;
  return sweepTable(
    series,
    {
      header: ['method', 'prefetch', 'region, chunk'],
      cells: (g) => [installOf(g[0]), policyOf(g[0]), `${g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes)}, ${bytes(g[0].chunkBytes)}`],
    },
    { header: (v) => `RTT ${v} ms`, of: (r) => r.rttMs },
    thr,
    formatMibps,
  );
}

/** Per chunk, handler side, at RTT 0 without prefetch: fetching it from the server and installing it, per install method. */
export function installTable(ds: RunRow[]): string | null {
  const sel = okRows(ds).filter(
    (r) =>
      r.scenario === 'read-seq' &&
      r.source === 'remote' &&
      r.rttMs === 0 &&
      policyOf(r) === 'none' &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      singleThread(r) &&
      r.installNsP50 != null,
  );
  // The prefetch sweep's cells: the largest region, its largest chunk.
  const big = Math.max(...sel.map((r) => r.regionBytes ?? 0));
  const rows = sel.filter((r) => (r.regionBytes ?? 0) === big);
  const chunk = Math.max(...rows.map((r) => r.chunkBytes));
  const groups = byKey(
    rows.filter((r) => r.chunkBytes === chunk),
    (r) => [installOf(r)],
  ).sort((a, b) => rank(INSTALL_ORDER, installOf(a[0])) - rank(INSTALL_ORDER, installOf(b[0])));
  if (!groups.length) return null;
  return mdTable(
    ['method', 'region, chunk', 'n', 'fetch p50 (fetch_ns_p50)', 'install p50 (install_ns_p50)'],
    groups.map((g) => [
      installOf(g[0]),
      `${bytes(big)}, ${bytes(chunk)}`,
      g.length,
      ciOf(g, (r) => r.fetchNsP50 ?? null, formatNs),
      ciOf(g, (r) => r.installNsP50 ?? null, formatNs),
    ]),
  );
}

/** Lazy against eager in one sparse-read cell: which is faster where the ratio's interval excludes 1. */
function side(iv: Interval): 'lazy' | 'eager' | 'undecided' {
  return iv.hi < 1 ? 'lazy' : iv.lo > 1 ? 'eager' : 'undecided';
}

const lazyLabel = (r: RunRow) => `${r.strategy}${policyOf(r) !== 'none' ? `, ${policyOf(r)}` : ', no prefetch'}`;

export function crossoverTables(ds: RunRow[]): string[] | null {
  const sel = okRows(ds).filter((r) => r.scenario === 'read-sparse' && r.source === 'remote' && r.designSpace?.touchFraction != null && r.totalNs !== null);
  const eager = sel.filter((r) => r.strategy === 'eager');
  const lazy = sel.filter((r) => r.strategy !== 'eager');
  if (!eager.length || !lazy.length) return null;
  const share = (r: RunRow) => r.designSpace!.touchFraction!;
  const pct = (s: number) => `${+(s * 100).toPrecision(3)} %`;
  const methods = [...new Set(lazy.map(lazyLabel))];
  const rtts = [...new Set(sel.map((r) => r.rttMs))].sort((a, b) => a - b);
  const shares = [...new Set(sel.map(share))].sort((a, b) => a - b);
  const cell = (rs: RunRow[]) => rs.filter((r) => r.totalNs !== null);
  const times = mdTable(
    ['RTT (ms)', 'share touched', 'eager', ...methods],
    rtts.flatMap((rtt) =>
      shares.map((s) => [
        rtt,
        pct(s),
        ciOf(cell(eager.filter((r) => r.rttMs === rtt && share(r) === s)), totalMs, formatNs),
        ...methods.map((m) => ciOf(cell(lazy.filter((r) => lazyLabel(r) === m && r.rttMs === rtt && share(r) === s)), totalMs, formatNs)),
      ]),
    ),
  );
  const verdict = mdTable(
    ['RTT (ms)', 'lazy method', 'faster than eager at', 'slower than eager at', 'undecided (interval of lazy/eager spans 1) at', 'n per cell'],
    rtts.flatMap((rtt) =>
      methods.flatMap((m) => {
        const got: Record<'lazy' | 'eager' | 'undecided', string[]> = { lazy: [], eager: [], undecided: [] };
        const ns: number[] = [];
        for (const s of shares) {
          const a = values(
            lazy.filter((r) => lazyLabel(r) === m && r.rttMs === rtt && share(r) === s),
            totalMs,
          );
          const b = values(
            eager.filter((r) => r.rttMs === rtt && share(r) === s),
            totalMs,
          );
          if (!a.length || !b.length) continue;
          ns.push(a.length, b.length);
          got[side(bootstrapRatio(a, b))].push(pct(s));
        }
        if (!ns.length) return [];
        const list = (xs: string[]) => (xs.length ? xs.join(', ') : '–');
        return [[rtt, m, list(got.lazy), list(got.eager), list(got.undecided), nRange(ns).replace('n = ', '')]];
      }),
    ),
  );
  return [times, verdict];
}

export function threadTable(ds: RunRow[]): string | null {
  const sel = okRows(ds).filter(
    (r) =>
      r.scenario === 'read-random' &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      !!r.designSpace &&
      (r.designSpace.vmaSpan ?? 1) === 1 &&
      r.throughputMibps !== null,
  );
  const label = (r: RunRow) => (r.strategy === 'uffd' ? `uffd, ${r.handlerThreads ?? 1} handler thread${(r.handlerThreads ?? 1) > 1 ? 's' : ''}` : 'sigsegv');
  const where = (r: RunRow) =>
    `${r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local'}, ${r.regionBytes === null ? '–' : bytes(r.regionBytes)}, ${bytes(r.chunkBytes)}`;
  const series = byKey(sel, (r) => [where(r), label(r)]).filter((g) => new Set(g.map((r) => r.designSpace!.appThreads)).size >= 3);
  if (!series.length) return null;
  return sweepTable(
    series,
    { header: ['source, region, chunk', 'method'], cells: (g) => [where(g[0]), label(g[0])] },
    { header: (v) => `${v} thread${v > 1 ? 's' : ''}`, of: (r) => r.designSpace!.appThreads },
    thr,
    formatMibps,
  );
}

export function chunkTable(ds: RunRow[]): string | null {
  const sel = okRows(ds).filter(
    (r) => r.scenario === 'read-seq' && (r.strategy === 'uffd' || r.strategy === 'sigsegv') && singleThread(r) && r.throughputMibps !== null,
  );
  const where = (r: RunRow) => (r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local');
  const series = byKey(sel, (r) => [where(r), installOf(r), policyOf(r), r.regionBytes]).filter((g) => new Set(g.map((r) => r.chunkBytes)).size >= 4);
  if (!series.length) return null;
  return sweepTable(
    series,
    { header: ['source', 'method', 'prefetch'], cells: (g) => [where(g[0]), installOf(g[0]), policyOf(g[0])] },
    { header: (v) => bytes(v), of: (r) => r.chunkBytes },
    thr,
    formatMibps,
  );
}

/** Huge pages (hugetlb, or THP advice) beside the same cell on small pages: each side's median and huge/small. */
export function hugeTable(rows: RunRow[]): string | null {
  const ok = okRows(rows).filter(
    (r) =>
      r.scenario === 'read-seq' &&
      (r.strategy === 'uffd' || r.strategy === 'sigsegv') &&
      !!r.designSpace &&
      r.designSpace.appThreads === 1 &&
      policyOf(r) === 'none' &&
      r.designSpace.handler !== 'process' &&
      (r.designSpace.residentLimit ?? null) === null,
  );
  const huge = ok.filter((r) => r.designSpace!.huge !== 'none');
  if (!huge.length) return null;
  const lines = byKey(huge, (r) => [r.designSpace!.huge, installOf(r), r.source, r.rttMs, r.regionBytes, r.chunkBytes]).flatMap((g) => {
    const g0 = g[0];
    const small = ok.filter(
      (r) =>
        r.designSpace!.huge === 'none' &&
        installOf(r) === installOf(g0) &&
        r.source === g0.source &&
        r.rttMs === g0.rttMs &&
        r.regionBytes === g0.regionBytes &&
        r.chunkBytes === g0.chunkBytes &&
        r.runId === g0.runId,
    );
    const a = values(g, thr);
    const b = values(small, thr);
    return [
      [
        g0.designSpace!.huge,
        installOf(g0),
        g0.source === 'remote' ? `remote, RTT ${g0.rttMs} ms` : 'local',
        `${g0.regionBytes === null ? '–' : bytes(g0.regionBytes)}, ${bytes(g0.chunkBytes)}`,
        `${b.length}/${a.length}`,
        b.length ? formatInterval(bootstrapMedian(b), formatMibps) : 'not in these results',
        formatInterval(bootstrapMedian(a), formatMibps),
        b.length ? formatInterval(bootstrapRatio(a, b), formatRatio) : '–',
      ],
    ];
  });
  return mdTable(['huge pages', 'method', 'source', 'region, chunk', 'n (small/huge)', 'small pages', 'huge pages', 'huge/small [95 % CI]'], lines);
}

/** sigsegv reading at random over large regions, one chunk per mapping or spans of chunks (vma_span): how many repetitions passed. */
export function vmaTable(ds: RunRow[]): string | null {
  const sel = ds.filter(
    (r) =>
      r.scenario === 'read-random' &&
      r.strategy === 'sigsegv' &&
      r.source === 'local' &&
      (r.regionBytes ?? 0) >= 256 * 2 ** 20 &&
      (r.designSpace?.appThreads ?? 1) === 1,
  );
  if (!sel.some((r) => (r.designSpace?.vmaSpan ?? 1) > 1)) return null;
  const span = (r: RunRow) => ((r.designSpace?.vmaSpan ?? 1) > 1 ? 'auto' : '1');
  const groups = byKey(sel, (r) => [r.regionBytes, span(r)]).sort(
    (a, b) => (a[0].regionBytes ?? 0) - (b[0].regionBytes ?? 0) || span(a[0]).localeCompare(span(b[0])),
  );
  return mdTable(
    ['region', 'vma_span', 'chunks per span (median)', 'repetitions ok', 'throughput of the ok ones'],
    groups.map((g) => {
      const ok = okRows(g);
      const spans = values(ok, (r) => r.designSpace?.vmaSpan ?? null);
      return [
        bytes(g[0].regionBytes ?? 0),
        span(g[0]),
        spans.length ? String(bootstrapMedian(spans).value) : '–',
        `${ok.length}/${g.length}`,
        ok.length ? ciOf(ok, thr, formatMibps) : '–',
      ];
    }),
  );
}

export function designSpaceSection(input: SectionInput): string {
  const ds = designSpaceRows(input);
  const hugetlb = matrixRows(input, 'hugetlb', (r) => r.designSpace?.huge === 'hugetlb');
  const parts: string[] = [];
  const fig = (name: string) => {
    const i = input.figures.findIndex((f) => f.name === name);
    return i >= 0 ? `[Figure ${i + 1}, ${name}](${input.figures[i].png})` : `figure \`${name}\` (not drawn from these rows)`;
  };
  const pf = prefetchTable(ds);
  const install = installTable(ds);
  const cross = crossoverTables(ds);
  const threads = threadTable(ds);
  const chunks = chunkTable(ds);
  const thp = hugeTable(ds);
  const tlb = hugeTable(hugetlb);
  const vma = vmaTable(ds);
  if (!pf && !cross && !threads && !chunks && !thp && !tlb && !vma)
    return 'No rows from the `design-space` or `hugetlb` matrices in these results: `faultlab run --matrix design-space` (and `--matrix hugetlb`) fill this section.';
  parts.push(`Every value: the median over a cell's repetitions [its ${BOOTSTRAP_NOTE}]; n: repetitions per cell (a range where cells differ).`);
  if (pf) parts.push(`**Prefetch against RTT** (sequential read, remote, read throughput; ${fig('prefetch-vs-rtt')}):`, pf);
  if (install)
    parts.push(
      '**Fetch and install per chunk** (the same read at RTT 0 without prefetch; handler side, per chunk: the request to the server, and putting the chunk into the region):',
      install,
    );
  if (cross)
    parts.push(
      `**Lazy or eager** (time to finish a sparse random read, a share of the chunks touched once; ${fig('lazy-eager-crossover')}):`,
      cross[0],
      'Which wins, per RTT and share: lazy/eager is the ratio of the two medians with its interval (each side resampled); a share is listed as faster or slower only where that interval excludes 1.',
      cross[1],
    );
  if (threads) parts.push(`**Application threads** (random read, throughput of all threads together; ${fig('thread-scaling')}):`, threads);
  if (chunks) parts.push(`**Chunk size** (sequential read, throughput; ${fig('chunk-sweep')}):`, chunks);
  if (thp || tlb)
    parts.push(
      `**Huge pages** (sequential read, no prefetch; hugetlb from the \`hugetlb\` matrix, ${fig('huge-pages')}; thp = \`MADV_HUGEPAGE\` advice on the region; each beside the same cell on small pages in the same run):`,
      [tlb, thp].filter(Boolean).join('\n\n'),
    );
  if (vma) parts.push('**The VMA limit** (sigsegv, random read in 4 KiB chunks, local; failed repetitions are in "Failed repetitions"):', vma);
  return parts.join('\n\n');
}
