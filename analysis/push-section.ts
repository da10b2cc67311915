// The paper's generated `push` section: write-track results per tracker and
// pattern, migrate results per pull strategy and RTT, and links to the push
// figures. Always returns text (a run without push rows says so).
import { formatInterval, formatNs, formatRatio, mdTable, sig } from './format.js';
import { compareTrackers, comparePatterns, isPushScenario, medianWriteSlowdown, TRACKER_ORDER } from './push.js';
import { compareMethods, methodLabel, okRows, type RunRow } from './runs.js';
import { bytes } from './slice.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, groupBy, median, values } from './stats.js';
import type { SectionInput } from './section-input.js';

/** The push figures, in FIGURES order. */
const PUSH_FIGURES = ['write-slowdown', 'push-per-interval', 'migration'];

const med = (g: RunRow[], f: (r: RunRow) => number | null): number | null => {
  const xs = values(g, f);
  return xs.length ? median(xs) : null;
};

/** "12.3 µs [11.9 µs, 13 µs]": the median over repetitions with its bootstrap interval. */
function ci(g: RunRow[], f: (r: RunRow) => number | null, fmt: (v: number | null) => string): string {
  const xs = values(g, f);
  return xs.length ? formatInterval(bootstrapMedian(xs), fmt) : '–';
}

function mib(b: number | null): string {
  if (b === null || !Number.isFinite(b)) return '–';
  return b >= 2 ** 20 ? `${sig(b / 2 ** 20)} MiB` : b >= 1024 ? `${sig(b / 1024)} KiB` : `${b} B`;
}

/** "3/3" rows whose column is true, out of the group. */
const countTrue = (g: RunRow[], f: (r: RunRow) => string) => `${g.filter((r) => f(r) === 'true').length}/${g.length}`;

/** "82" or "72–76": a range when the values differ. */
function range(xs: number[], fmt: (v: number) => string = (v) => sig(v)): string {
  if (xs.length === 0) return '–';
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? fmt(lo) : `${fmt(lo)}–${fmt(hi)}`;
}

/** "590 ms [441 ms, 898 ms] (441 ms–898 ms)": median, its bootstrap interval, and min–max over repetitions. */
function spreadNs(g: RunRow[], f: (r: RunRow) => number | null): string {
  const xs = values(g, f);
  if (xs.length === 0) return '–';
  return xs.length === 1 ? formatNs(xs[0]) : `${formatInterval(bootstrapMedian(xs), formatNs)} (${formatNs(Math.min(...xs))}–${formatNs(Math.max(...xs))})`;
}

function writeTrackTable(rows: RunRow[]): string {
  const setup = (r: RunRow) => `${r.regionBytes === null ? '?' : bytes(r.regionBytes)}, ${r.source}`;
  const groups = [
    ...groupBy(rows, (r) => [r.strategy, r.push!.pattern, setup(r), r.chunkBytes, r.push!.writeFraction, r.push!.intervals].join('\u0000')).values(),
  ].sort(
    (a, b) =>
      compareTrackers(a[0].strategy, b[0].strategy) ||
      comparePatterns(a[0].push!.pattern, b[0].push!.pattern) ||
      (a[0].regionBytes ?? 0) - (b[0].regionBytes ?? 0),
  );
  return mdTable(
    [
      'tracker',
      'pattern',
      'region, source',
      'write fraction × intervals',
      'RTT (ms)',
      'n',
      'write p50: tracked / untracked',
      'slowdown (p50s) [95 % CI]',
      'overhead/write (write_overhead_ns)',
      'collect (collect_ns_p50)',
      'full-region compare (compare_ns)',
      'dirty chunks / interval',
      'bytes pushed',
      'amplification',
      'tracker exact',
      'verified',
    ],
    groups.map((g) => {
      const p = (r: RunRow) => r.push!;
      return [
        g[0].strategy,
        p(g[0]).pattern,
        setup(g[0]),
        `${p(g[0]).writeFraction ?? '?'} × ${p(g[0]).intervals ?? '?'}`,
        [...new Set(g.map((r) => r.rttMs))].sort((a, b) => a - b).join(', '),
        g.length,
        `${formatNs(med(g, (r) => p(r).writeNsP50))} / ${formatNs(med(g, (r) => p(r).writeUntrackedNsP50))}`,
        ci(g, (r) => medianWriteSlowdown(p(r)), formatRatio),
        formatNs(med(g, (r) => p(r).writeOverheadNs)),
        formatNs(med(g, (r) => p(r).collectNsP50)),
        formatNs(med(g, (r) => p(r).compareNs)),
        range(g.flatMap((r) => p(r).dirtyChunks ?? [])),
        mib(med(g, (r) => p(r).bytesPushed)),
        formatRatio(med(g, (r) => p(r).writeAmplification)),
        countTrue(g, (r) => p(r).trackerExact),
        countTrue(g, (r) => r.verified),
      ];
    }),
  );
}

function migrateTable(rows: RunRow[]): string {
  const groups = [
    ...groupBy(rows, (r) =>
      [methodLabel(r), r.rttMs, r.regionBytes, r.chunkBytes, r.push!.tracker, r.push!.pattern, r.push!.writeFraction].join('\u0000'),
    ).values(),
  ].sort((a, b) => compareMethods(methodLabel(a[0]), methodLabel(b[0])) || a[0].rttMs - b[0].rttMs || (a[0].regionBytes ?? 0) - (b[0].regionBytes ?? 0));
  return mdTable(
    [
      'pull strategy (destination)',
      'RTT (ms)',
      'region',
      'source tracker, pattern',
      'n',
      'migration total: median [95 % CI] (min–max)',
      'downtime: median [95 % CI] (min–max)',
      'pre-copy rounds',
      'bytes moved (median)',
      'verified',
    ],
    groups.map((g) => [
      methodLabel(g[0]),
      g[0].rttMs,
      g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes),
      `${g[0].push!.tracker || '?'}, ${g[0].push!.pattern || '?'}`,
      g.length,
      spreadNs(g, (r) => r.push!.migrationNs),
      spreadNs(g, (r) => r.push!.downtimeNs),
      range(values(g, (r) => r.push!.precopyRounds)),
      mib(med(g, (r) => r.push!.bytesMoved)),
      countTrue(g, (r) => r.verified),
    ]),
  );
}

export function pushSection({ rows, figures }: Pick<SectionInput, 'rows' | 'figures'>): string {
  const ok = okRows(rows).filter((r) => r.push !== null);
  const writeTrack = ok.filter((r) => r.scenario === 'write-track');
  const migrate = ok.filter((r) => r.scenario === 'migrate');
  const failed = rows.filter((r) => isPushScenario(r.scenario) && r.status !== 'ok');
  const failedNote = failed.length ? `${failed.length} push repetition(s) failed and are counted in no table or figure (see "Failed repetitions").` : '';
  if (writeTrack.length === 0 && migrate.length === 0)
    return ['No write-track or migrate rows in these results: they come from the `push` matrix (`faultlab run --matrix push`).', failedNote]
      .filter(Boolean)
      .join('\n\n');

  const parts: string[] = [];
  if (writeTrack.length) {
    const missing = TRACKER_ORDER.filter((t) => !writeTrack.some((r) => r.strategy === t));
    parts.push(
      `**Write tracking** (scenario \`write-track\`; medians over the n repetitions, RTTs pooled: writes are timed between pushes; intervals: ${BOOTSTRAP_NOTE}). ` +
        'Slowdown (p50s) = write_ns_p50 / write_untracked_ns_p50; overhead/write = (write_ns − write_ns_untracked) / writes, ' +
        'a difference of sums that a single preemption moves; collect = mean time to find the dirty chunks and re-arm; ' +
        'full-region compare = the chunk-by-chunk memcmp that finding them without a tracker would cost per sync; ' +
        'bytes pushed = all intervals of one repetition; tracker exact = no chunk missed or reported extra (`none` reports every chunk).' +
        (missing.length ? ` No rows for: ${missing.join(', ')}.` : ''),
      writeTrackTable(writeTrack),
    );
  }
  if (migrate.length)
    parts.push(
      `**Live migration** (scenario \`migrate\`; intervals: ${BOOTSTRAP_NOTE}): migration total = the source’s first push to the destination holding every chunk; ` +
        'downtime = source stopped to the destination’s first served access; bytes moved = pushed + pulled.',
      migrateTable(migrate),
    );
  const shown = PUSH_FIGURES.map((name) => ({ name, i: figures.findIndex((f) => f.name === name) })).filter((f) => f.i >= 0);
  if (shown.length) parts.push(`Figures: ${shown.map(({ name, i }) => `[Figure ${i + 1}, ${name}](${figures[i].png})`).join(', ')}.`);
  if (failedNote) parts.push(failedNote);
  return parts.join('\n\n');
}
