// The paper's sections for what issues 18-20 added, one per matrix:
// latency-methods (server-delay against nbdkit's delay filter), handler (uffd's
// handler in a process of its own), resident (regions larger than the resident
// limit) and migrate (streamed live migration). Each reads only the rows of
// the runs of its matrix and, without them, says in one line which to run.
// Every number comes from those rows: medians with their bootstrap intervals.
import { QEMU_DOWNTIME_LIMIT_MS } from './figures/migration.js';
import { formatInterval, formatMibps, formatNs, formatRatio, mdTable, sig } from './format.js';
import { methodLabel, okRows, type RunRow } from './runs.js';
import { bytes } from './slice.js';
import type { SectionInput } from './section-input.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, bootstrapRatio, groupBy, median, values } from './stats.js';

type Get = (r: RunRow) => number | null;

/** Rows of the runs of `matrix` (env.json), and of runs holding a row only that matrix makes (hand-made rows, runs combined before env.matrix was recorded). */
export function matrixRows({ rows, runs = [] }: Pick<SectionInput, 'rows' | 'runs'>, matrix: string, signature: (r: RunRow) => boolean): RunRow[] {
  const ids = new Set(runs.filter((r) => r.env?.matrix === matrix).map((r) => r.id));
  for (const r of rows) if (signature(r)) ids.add(r.runId);
  return rows.filter((r) => ids.has(r.runId));
}

/** Rows of every run but those of `matrix` (env.json). */
export function withoutMatrix({ rows, runs = [] }: Pick<SectionInput, 'rows' | 'runs'>, matrix: string): RunRow[] {
  const ids = new Set(runs.filter((r) => r.env?.matrix === matrix).map((r) => r.id));
  return rows.filter((r) => !ids.has(r.runId));
}

/** The one line a section shows when its matrix's runs are absent. */
export const missingRunLine = (matrix: string) =>
  `No rows from the \`${matrix}\` matrix in these results: \`faultlab run --matrix ${matrix}\` fills this section.`;

/** "12.3 µs [11.9 µs, 13 µs]", or '–' when no row has the value. */
function ci(g: RunRow[], f: Get, fmt: (v: number | null) => string): string {
  const xs = values(g, f);
  return xs.length ? formatInterval(bootstrapMedian(xs), fmt) : '–';
}

/** Ratio of the medians of two groups with its interval (each side resampled), or '–'. */
function ratioCi(num: RunRow[], den: RunRow[], f: Get): string {
  const a = values(num, f);
  const b = values(den, f);
  return a.length && b.length ? formatInterval(bootstrapRatio(a, b), formatRatio) : '–';
}

const med = (g: RunRow[], f: Get): string => {
  const xs = values(g, f);
  return xs.length ? sig(median(xs)) : '–';
};

/** "[Figure 3, name](png)", or why the figure is absent. */
function figureRef(figures: SectionInput['figures'], name: string): string {
  const i = figures.findIndex((f) => f.name === name);
  return i >= 0 ? `Figure: [Figure ${i + 1}, ${name}](${figures[i].png}).` : `Figure \`${name}\`: not drawn from these rows.`;
}

const byKey = (rows: RunRow[], key: (r: RunRow) => (string | number | null)[]) => [...groupBy(rows, (r) => key(r).join('\u0000')).values()];

// ---- latency-methods (issue 18) ----

const LATENCY = ['server-delay', 'nbdkit-delay'];
const firstNs: Get = (r) => r.firstAccessNs;
/** Time per chunk of a sequential read (chunk / throughput), ns. */
const perChunkNs: Get = (r) => (r.throughputMibps ? (r.chunkBytes / (r.throughputMibps * 2 ** 20)) * 1e9 : null);

export function latencyMethodsSection(input: SectionInput): string {
  const rows = matrixRows(input, 'latency-methods', (r) => r.latency === 'nbdkit-delay');
  const sel = okRows(rows).filter((r) => r.source === 'remote' && LATENCY.includes(r.latency));
  if (!sel.some((r) => r.latency === 'nbdkit-delay')) return missingRunLine('latency-methods');
  const cells = byKey(sel, (r) => [r.scenario, r.strategy, r.rttMs, r.latency]).sort(
    (a, b) =>
      a[0].scenario.localeCompare(b[0].scenario) ||
      a[0].strategy.localeCompare(b[0].strategy) ||
      a[0].rttMs - b[0].rttMs ||
      LATENCY.indexOf(a[0].latency) - LATENCY.indexOf(b[0].latency),
  );
  const first = cells.filter((g) => g[0].scenario === 'first-chunk');
  const seq = cells.filter((g) => g[0].scenario === 'read-seq');
  const partner = (g: RunRow[], other: RunRow[][]) =>
    other.find((h) => h[0].scenario === g[0].scenario && h[0].strategy === g[0].strategy && h[0].rttMs === g[0].rttMs && h[0].latency === 'server-delay');
  const parts = [`Medians over the n repetitions of each cell [${BOOTSTRAP_NOTE}]; nbdkit/server = ratio of the two methods' medians in the same cell.`];
  if (first.length)
    parts.push(
      mdTable(
        ['strategy', 'configured RTT (ms)', 'latency emulation', 'n', 'first access (measured)', 'nbdkit/server [95 % CI]'],
        first.map((g) => {
          const p = g[0].latency === 'nbdkit-delay' ? partner(g, first) : undefined;
          return [g[0].strategy, g[0].rttMs, g[0].latency, g.length, ci(g, firstNs, formatNs), p ? ratioCi(g, p, firstNs) : '–'];
        }),
      ),
    );
  if (seq.length)
    parts.push(
      mdTable(
        ['strategy', 'chunk', 'configured RTT (ms)', 'latency emulation', 'n', 'throughput', 'time per chunk', 'throughput nbdkit/server [95 % CI]'],
        seq.map((g) => {
          const p = g[0].latency === 'nbdkit-delay' ? partner(g, seq) : undefined;
          return [
            g[0].strategy,
            bytes(g[0].chunkBytes),
            g[0].rttMs,
            g[0].latency,
            g.length,
            ci(g, (r) => r.throughputMibps, formatMibps),
            ci(g, perChunkNs, formatNs),
            p ? ratioCi(g, p, (r) => r.throughputMibps) : '–',
          ];
        }),
      ),
    );
  parts.push(figureRef(input.figures, 'latency-methods'));
  return parts.join('\n\n');
}

// ---- handler (issue 19) ----

const handlerOf = (r: RunRow) => (r.designSpace?.handler === 'process' ? 'process' : 'thread');
/** uffd rows in the thesis's set-up apart from where the handler runs. */
const plainUffd = (r: RunRow) =>
  r.strategy === 'uffd' &&
  (r.designSpace?.prefetch ?? 'none') === 'none' &&
  (r.designSpace?.appThreads ?? 1) === 1 &&
  (r.designSpace?.huge ?? 'none') === 'none' &&
  (r.designSpace?.residentLimit ?? null) === null;
const condition = (r: RunRow) => (r.source === 'remote' ? `remote, RTT ${r.rttMs} ms` : 'local');

export function handlerSection(input: SectionInput): string {
  const rows = matrixRows(input, 'handler', (r) => r.designSpace?.handler === 'process');
  const sel = okRows(rows).filter(plainUffd);
  if (!sel.some((r) => r.designSpace?.handler === 'process')) return missingRunLine('handler');
  const measures: { scenario: string; label: string; get: Get }[] = [
    { scenario: 'read-seq', label: 'per-fault cost (read-seq, fault p50)', get: (r) => r.faultNsP50 },
    { scenario: 'first-chunk', label: 'first-chunk latency (first access)', get: (r) => r.firstAccessNs },
  ];
  const lines: (string | number)[][] = [];
  for (const m of measures) {
    const conds = byKey(
      sel.filter((r) => r.scenario === m.scenario),
      (r) => [condition(r), r.cpus],
    ).sort((a, b) => (a[0].source === b[0].source ? a[0].rttMs - b[0].rttMs : a[0].source === 'local' ? -1 : 1) || a[0].cpus.localeCompare(b[0].cpus));
    for (const g of conds) {
      const thread = g.filter((r) => handlerOf(r) === 'thread');
      const proc = g.filter((r) => handlerOf(r) === 'process');
      lines.push([
        m.label,
        condition(g[0]),
        g[0].cpus,
        `${thread.length}/${proc.length}`,
        thread.length ? ci(thread, m.get, formatNs) : '–',
        proc.length ? ci(proc, m.get, formatNs) : '–',
        thread.length && proc.length ? ratioCi(proc, thread, m.get) : '–',
      ]);
    }
  }
  return [
    `uffd with no prefetch, one application thread, small pages; medians over the n repetitions [${BOOTSTRAP_NOTE}]; ` +
      'process/thread = ratio of the two medians, its interval from resampling each side.',
    mdTable(['measure', 'source', 'cpus', 'n (thread/process)', 'handler thread', 'handler process', 'process/thread [95 % CI]'], lines),
    figureRef(input.figures, 'handler-process'),
  ].join('\n\n');
}

// ---- resident (issue 19) ----

const hitRate: Get = (r) => {
  const d = r.designSpace;
  return d?.faults != null && (d.chunksTouched ?? 0) > 0 ? 1 - d.faults / d.chunksTouched! : null;
};

export function residentSection(input: SectionInput): string {
  const rows = matrixRows(input, 'resident', (r) => r.designSpace?.residentLimit != null);
  const ok = okRows(rows);
  const limited = ok.filter((r) => r.designSpace?.residentLimit != null);
  if (limited.length === 0) return missingRunLine('resident');
  const limitOf = (r: RunRow) => r.designSpace?.residentLimit ?? null;
  const sweep = byKey(
    limited.filter((r) => r.scenario !== 'read-seq'),
    (r) => [r.scenario, r.strategy, r.designSpace!.evict || 'fifo', r.regionBytes, limitOf(r)],
  ).sort(
    (a, b) =>
      a[0].scenario.localeCompare(b[0].scenario) ||
      a[0].strategy.localeCompare(b[0].strategy) ||
      (a[0].designSpace!.evict || 'fifo').localeCompare(b[0].designSpace!.evict || 'fifo') ||
      limitOf(a[0])! - limitOf(b[0])!,
  );
  const ds =
    (k: 'evictions' | 'refetches' | 'writebacks'): Get =>
    (r) =>
      r.designSpace?.[k] ?? null;
  const parts = [
    `Medians over the n repetitions [${BOOTSTRAP_NOTE}]; hit rate = 1 − faults / chunks touched; evictions, refetches and write-backs: medians per repetition.`,
  ];
  if (sweep.length)
    parts.push(
      mdTable(
        ['scenario', 'strategy', 'policy', 'region', 'resident limit', 'n', 'throughput', 'hit rate', 'evictions', 'refetches', 'write-backs'],
        sweep.map((g) => [
          g[0].scenario,
          g[0].strategy,
          g[0].designSpace!.evict || 'fifo',
          g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes),
          bytes(limitOf(g[0])!),
          g.length,
          ci(g, (r) => r.throughputMibps, formatMibps),
          ci(g, hitRate, (v) => (v === null ? '–' : sig(v))),
          med(g, ds('evictions')),
          med(g, ds('refetches')),
          med(g, ds('writebacks')),
        ]),
      ),
    );
  // The large sequential read through a limit against the same read of a region the size of that limit without one.
  const big = limited.filter((r) => r.scenario === 'read-seq');
  const pairs = byKey(big, (r) => [r.strategy, r.regionBytes, limitOf(r), r.chunkBytes]).map((g) => ({
    g,
    base: ok.filter(
      (r) =>
        r.scenario === 'read-seq' && limitOf(r) === null && r.strategy === g[0].strategy && r.regionBytes === limitOf(g[0]) && r.chunkBytes === g[0].chunkBytes,
    ),
  }));
  if (pairs.length)
    parts.push(
      mdTable(
        ['strategy', 'region, limit', 'n', 'throughput', 'evictions', 'region without a limit', 'n', 'throughput', 'limited/unlimited [95 % CI]'],
        pairs.map(({ g, base }) => [
          g[0].strategy,
          `${g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes)}, ${bytes(limitOf(g[0])!)}`,
          g.length,
          ci(g, (r) => r.throughputMibps, formatMibps),
          med(g, ds('evictions')),
          bytes(limitOf(g[0])!),
          base.length,
          base.length ? ci(base, (r) => r.throughputMibps, formatMibps) : 'not in these results',
          base.length ? ratioCi(g, base, (r) => r.throughputMibps) : '–',
        ]),
      ),
    );
  else parts.push('No sequential read through a resident limit (group resident-32gib) in these results.');
  parts.push(figureRef(input.figures, 'resident-limit'));
  return parts.join('\n\n');
}

// ---- migrate (issue 20) ----

const MODES = ['precopy', 'postcopy', 'hybrid'];

export function migrationSection(input: SectionInput): string {
  const rows = matrixRows(input, 'migrate', (r) => r.scenario === 'migrate' && !!r.push?.stopReason);
  const sel = okRows(rows).filter((r) => r.scenario === 'migrate' && r.push !== null);
  if (sel.length === 0) return missingRunLine('migrate');
  const limitNs = QEMU_DOWNTIME_LIMIT_MS * 1e6;
  const groups = byKey(sel, (r) => [r.push!.migrateMode, methodLabel(r), r.push!.destPrefetch, r.rttMs, r.regionBytes]).sort(
    (a, b) =>
      MODES.indexOf(a[0].push!.migrateMode) - MODES.indexOf(b[0].push!.migrateMode) ||
      methodLabel(a[0]).localeCompare(methodLabel(b[0])) ||
      a[0].push!.destPrefetch.localeCompare(b[0].push!.destPrefetch) ||
      a[0].rttMs - b[0].rttMs,
  );
  return [
    `Medians over the n repetitions [${BOOTSTRAP_NOTE}]. Downtime at or under QEMU's default downtime limit (${QEMU_DOWNTIME_LIMIT_MS} ms): repetitions within it, and whether the whole interval is.`,
    mdTable(
      [
        'mode',
        'pull strategy (destination)',
        'pull policy',
        'RTT (ms)',
        'region',
        'n',
        'migration time',
        'downtime',
        `downtime ≤ ${QEMU_DOWNTIME_LIMIT_MS} ms`,
        'pre-copy rounds (median)',
        'verified',
      ],
      groups.map((g) => {
        const down = values(g, (r) => r.push!.downtimeNs);
        const iv = down.length ? bootstrapMedian(down) : null;
        const within = down.filter((v) => v <= limitNs).length;
        return [
          g[0].push!.migrateMode,
          methodLabel(g[0]),
          g[0].push!.destPrefetch,
          g[0].rttMs,
          g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes),
          g.length,
          ci(g, (r) => r.push!.migrationNs, formatNs),
          iv ? formatInterval(iv, formatNs) : '–',
          iv ? `${within}/${down.length}${iv.hi <= limitNs ? ', interval within' : iv.lo > limitNs ? ', interval above' : ', interval straddles'}` : '–',
          med(g, (r) => r.push!.precopyRounds),
          `${g.filter((r) => r.verified === 'true').length}/${g.length}`,
        ];
      }),
    ),
    figureRef(input.figures, 'migration'),
  ].join('\n\n');
}
