// The paper's `claims` section: for each of the thesis's four claims, the
// measures of this study that decide it, each a median or a ratio of medians
// with its bootstrap interval, and a verdict the interval supports (never a
// median alone compared with a bound). The prose states the claims and points
// here for the numbers.
import { designSpaceRows, installOf } from './design-space-section.js';
import { formatInterval, formatMibps, formatNs, formatRatio, mdTable, sig } from './format.js';
import { okRows, type RunRow } from './runs.js';
import { oneParameterSet } from './slice.js';
import type { SectionInput } from './section-input.js';
import { sideValues, type Side } from './ratios.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, bootstrapRatio, values, type Interval } from './stats.js';
import { matrixRows } from './study-sections.js';

type Line = [claim: string, measure: string, value: string, against: string, verdict: string];

const ratioText = (iv: Interval) => `${formatInterval(iv, formatRatio)} (${iv.n}/${iv.nDen ?? iv.n})`;
const medText = (iv: Interval, fmt: (v: number | null) => string) => `${formatInterval(iv, fmt)} (${iv.n})`;
/** Which side of 1 a ratio's interval lies on. */
const above1 = (iv: Interval) => (iv.lo > 1 ? 'above' : iv.hi < 1 ? 'below' : 'spans');

const faultP50 = (strategy: string, source: string): Side => ({ scenario: 'read-seq', strategy, source, column: 'fault_ns_p50' });
const firstChunk = (strategy: string, source: string): Side => ({ scenario: 'first-chunk', strategy, source, column: 'first_access_ns' });

/** Claim 1: a SIGSEGV handler is "fairly complicated and inefficient". */
function claim1(thesis: RunRow[]): Line[] {
  const c = '1: SIGSEGV is inefficient';
  const out: Line[] = [];
  const pair = (label: string, a: Side, b: Side, cheaper: string) => {
    const x = sideValues(thesis, a);
    const y = sideValues(thesis, b);
    if (!x.length || !y.length) return null;
    const iv = bootstrapRatio(x, y);
    const where = above1(iv);
    out.push([
      c,
      label,
      ratioText(iv),
      '1 (equal cost)',
      where === 'above' ? `sigsegv ${cheaper}` : where === 'below' ? `uffd ${cheaper}` : 'no difference resolved (interval spans 1)',
    ]);
    return iv;
  };
  const local = pair('fault p50, uffd / sigsegv (local source, 0 ms)', faultP50('uffd', 'local'), faultP50('sigsegv', 'local'), 'faster per fault');
  // sigsegv pre-populates at set-up what uffd does in its faults: the same ratio with each repetition's set-up spread over its chunks.
  const withSetup = (strategy: string) =>
    values(
      oneParameterSet(
        okRows(thesis).filter((r) => r.scenario === 'read-seq' && r.strategy === strategy && r.source === 'local' && r.rttMs === 0),
        'largest-region',
      ),
      (r) => (r.setupNs != null && r.faultNsP50 !== null && r.regionBytes ? r.faultNsP50 + r.setupNs / (r.regionBytes / r.chunkBytes) : null),
    );
  const [su, ss] = [withSetup('uffd'), withSetup('sigsegv')];
  let counted: Interval | null = null;
  if (su.length && ss.length) {
    counted = bootstrapRatio(su, ss);
    const w = above1(counted);
    out.push([
      c,
      'fault p50 + set-up (setup_ns) spread over the region’s chunks, uffd / sigsegv (local source, 0 ms)',
      ratioText(counted),
      '1 (equal cost)',
      w === 'above'
        ? 'sigsegv cheaper with its set-up counted'
        : w === 'below'
          ? 'uffd cheaper with the set-up counted'
          : 'no difference resolved with the set-up counted (interval spans 1)',
    ]);
  }
  pair('first access, uffd / sigsegv (local source, 0 ms)', firstChunk('uffd', 'local'), firstChunk('sigsegv', 'local'), 'faster to the first byte');
  pair('fault p50, uffd / sigsegv (loopback TCP, 0 ms)', faultP50('uffd', 'remote'), faultP50('sigsegv', 'remote'), 'faster per fault');
  const transport = values(
    okRows(thesis).filter((r) => r.scenario === 'transport' && r.strategy === 'tcp' && r.chunkBytes === 4096 && r.rttMs === 0),
    (r) => r.faultNsP50,
  );
  for (const s of ['uffd', 'sigsegv']) {
    const f = sideValues(thesis, faultP50(s, 'remote'));
    if (!transport.length || !f.length) continue;
    const iv = bootstrapRatio(transport, f);
    const pct = (v: number | null) => (v === null || !Number.isFinite(v) ? '–' : `${sig(v * 100)} %`);
    out.push([
      c,
      `share of a ${s} fault over loopback TCP that is the raw 4 KiB request/response (transport p50 / fault p50)`,
      `${formatInterval(iv, pct)} (${iv.n}/${iv.nDen})`,
      '50 %',
      iv.lo > 0.5 ? 'the transport is most of the fault' : iv.hi < 0.5 ? 'the transport is less than half the fault' : 'about half (interval spans 50 %)',
    ]);
  }
  if (local) {
    const w = above1(local);
    out.unshift([
      c,
      '**verdict**',
      '',
      '',
      (w === 'above'
        ? '**not inefficient here: a SIGSEGV fault costs less than a userfaultfd fault (local source)'
        : w === 'below'
          ? '**partly supported: a SIGSEGV fault costs more than a userfaultfd fault (local source)'
          : '**not shown: the two faults cost the same within the intervals (local source)') +
        (counted
          ? above1(counted) === w
            ? ', with its set-up counted too**'
            : above1(counted) === 'spans'
              ? '; with each one’s set-up counted, no difference is resolved**'
              : `; with each one’s set-up counted, ${above1(counted) === 'above' ? 'sigsegv' : 'uffd'} is the cheaper**`
          : '**'),
    ]);
  }
  return out;
}

/** Claim 2: userfaultfd "does not allow for tracking changes". */
function claim2(push: RunRow[]): Line[] {
  const c = '2: userfaultfd cannot track changes';
  const wt = push.filter((r) => r.scenario === 'write-track' && r.push);
  const out: Line[] = [];
  let allExact = true;
  let any = false;
  for (const t of ['uffd-wp', 'uffd-wp-async', 'mprotect']) {
    const g = wt.filter((r) => r.strategy === t);
    if (!g.length) continue;
    const ok = okRows(g);
    const exact = ok.filter((r) => r.push!.trackerExact === 'true' && r.verified === 'true').length;
    if (t !== 'mprotect') {
      any = true;
      allExact &&= exact === g.length;
    }
    out.push([
      c,
      `${t}: repetitions with exactly the written chunks reported (none missed, none extra) and the copy verified`,
      `${exact}/${g.length}`,
      'every repetition',
      exact === g.length ? 'exact in every repetition' : '**not exact in every repetition**',
    ]);
  }
  if (any)
    out.unshift([
      c,
      '**verdict**',
      '',
      '',
      allExact
        ? '**does not hold for current kernels: both userfaultfd write-protect trackers reported exactly the written chunks in every repetition**'
        : '**not decided: a userfaultfd tracker missed or added chunks in some repetition (push section)**',
    ]);
  return out;
}

/** Sequential-read throughput of one prefetch series at one RTT (design-space rows, 1 MiB chunks as its prefetch sweep). */
function seqThroughput(ds: RunRow[], install: string, policy: string, rtt: number): number[] {
  const sel = okRows(ds).filter(
    (r) =>
      r.scenario === 'read-seq' &&
      r.source === 'remote' &&
      installOf(r) === install &&
      (r.designSpace?.prefetch ?? 'none') === policy &&
      r.designSpace?.appThreads === 1 &&
      r.designSpace.huge === 'none' &&
      r.designSpace.handler !== 'process' &&
      r.rttMs === rtt,
  );
  // The prefetch sweep's cells (largest region; its chunk size), not the chunk sweep's.
  const regions = [...new Set(sel.map((r) => r.regionBytes ?? 0))].sort((a, b) => b - a);
  const big = sel.filter((r) => (r.regionBytes ?? 0) === regions[0]);
  const chunks = [...new Set(big.map((r) => r.chunkBytes))].sort((a, b) => b - a);
  return values(
    big.filter((r) => r.chunkBytes === chunks[0]),
    (r) => r.throughputMibps,
  );
}

/** A thread sweep's gain below this (8 threads against 1) is called "nearly one after another", even where its interval excludes 1. */
const SCALES = 1.25;

const UFFD_INSTALLS = ['uffd UFFDIO_COPY', 'uffd UFFDIO_CONTINUE', 'uffd UFFDIO_MOVE'];
const PIPELINED = 'background';

/** Claim 3: userfaultfd cannot prefetch without an extra layer of indirection. */
function claim3(ds: RunRow[]): Line[] {
  const c = '3: userfaultfd cannot prefetch without another layer';
  const out: Line[] = [];
  const verdicts: string[] = [];
  const rtts = [
    ...new Set(
      okRows(ds)
        .filter((r) => (r.designSpace?.prefetch ?? 'none') === PIPELINED)
        .map((r) => r.rttMs),
    ),
  ]
    .filter((x) => x >= 10)
    .sort((a, b) => a - b);
  for (const install of UFFD_INSTALLS)
    for (const rtt of rtts) {
      const a = seqThroughput(ds, install, PIPELINED, rtt);
      const b = seqThroughput(ds, install, 'none', rtt);
      if (!a.length || !b.length) continue;
      const iv = bootstrapRatio(a, b);
      verdicts.push(above1(iv));
      out.push([
        c,
        `${install}, sequential read at ${rtt} ms: throughput with prefetch=${PIPELINED} / without prefetch`,
        ratioText(iv),
        '1',
        above1(iv) === 'above' ? 'prefetch raises throughput' : 'no gain resolved',
      ]);
    }
  // Every chunk fetched once: bytes fetched equals the region in every prefetching uffd repetition of a full sequential read.
  const full = okRows(ds).filter(
    (r) =>
      r.scenario === 'read-seq' &&
      r.strategy === 'uffd' &&
      (r.designSpace?.prefetch ?? 'none') !== 'none' &&
      r.designSpace?.bytesFetched != null &&
      r.regionBytes !== null,
  );
  if (full.length) {
    const once = full.filter((r) => r.designSpace!.bytesFetched === r.regionBytes).length;
    out.push([
      c,
      'prefetching uffd repetitions of a whole sequential read that fetched each byte once (bytes_fetched = region)',
      `${once}/${full.length}`,
      'every repetition',
      once === full.length ? 'no chunk fetched twice' : 'some chunks fetched twice',
    ]);
  }
  if (verdicts.length)
    out.unshift([
      c,
      '**verdict**',
      '',
      '',
      verdicts.every((v) => v === 'above')
        ? '**does not hold: every uffd install prefetches through the registered range itself, and prefetch raises throughput at every RTT shown**'
        : verdicts.some((v) => v === 'above')
          ? '**does not hold for the installs where prefetch raises throughput; the others show no gain resolved**'
          : '**not shown by these rows: no install gains from prefetch beyond the intervals**',
    ]);
  return out;
}

/** Claim 4: faults served one after another make userfaultfd "essentially unusable" at high RTT. */
function claim4(thesis: RunRow[], ds: RunRow[], input: SectionInput): Line[] {
  const c = '4: unusable at high RTT';
  const out: Line[] = [];
  const bound = input.thesis.values.find((v) => v.id === 'throughput-6ms-userfaultfd-bound');
  const nbd = input.thesis.values.find((v) => v.id === 'nbd-managed-read-25ms');
  const sweep = (s: string, scenario: string) =>
    oneParameterSet(
      okRows(thesis).filter((r) => r.scenario === scenario && r.strategy === s && r.source === 'remote'),
      'widest-rtt-sweep',
    );
  const rtts = [...new Set(sweep('uffd', 'read-seq').map((r) => r.rttMs))].sort((a, b) => a - b);
  const slow = bound?.rtt_ms !== undefined ? rtts.filter((r) => r >= bound.rtt_ms!) : [];
  let collapse: boolean | null = null;
  for (const s of ['uffd', 'sigsegv']) {
    const rows = sweep(s, 'read-seq');
    const at = slow[0];
    if (at === undefined || !bound) continue;
    const g = rows.filter((r) => r.rttMs === at);
    const xs = values(g, (r) => r.throughputMibps);
    if (!xs.length) continue;
    const iv = bootstrapMedian(xs);
    const perRtt = g[0].chunkBytes / 2 ** 20 / (at / 1000);
    const below = iv.hi < bound.value;
    collapse = (collapse ?? true) && below;
    out.push([
      c,
      `${s} (remote), no prefetch, sequential read at ${at} ms (one ${sig(g[0].chunkBytes / 1024)} KiB chunk per round trip would be ${formatMibps(perRtt)})`,
      medText(iv, formatMibps),
      `the thesis: < ${bound.value_as_published} ${bound.unit_as_published} from ${bound.rtt_ms} ms (fig.)`,
      below ? 'below the thesis’s bound over the whole interval, as there' : iv.lo >= bound.value ? 'above the thesis’s bound' : 'straddles the thesis’s bound',
    ]);
  }
  for (const s of ['uffd', 'sigsegv']) {
    const rows = sweep(s, 'first-chunk');
    const top = Math.max(...rows.map((r) => r.rttMs));
    const xs = values(
      rows.filter((r) => r.rttMs === top),
      (r) => r.firstAccessNs,
    );
    if (!xs.length || !(top > 0)) continue;
    const iv = bootstrapMedian(xs);
    out.push([c, `${s} (remote), first access at ${top} ms`, medText(iv, formatNs), `${top} ms RTT`, `RTT plus ${formatNs(iv.value - top * 1e6)} (median)`]);
  }
  if (nbd) {
    for (const install of [...UFFD_INSTALLS, 'sigsegv']) {
      if (nbd.rtt_ms === undefined) break;
      const xs = seqThroughput(ds, install, PIPELINED, nbd.rtt_ms);
      if (!xs.length) continue;
      const iv = bootstrapMedian(xs);
      out.push([
        c,
        `${install}, prefetch=${PIPELINED}, sequential read at ${nbd.rtt_ms} ms`,
        medText(iv, formatMibps),
        `the thesis’s NBD managed mounts: > ${nbd.value_as_published} ${nbd.unit_as_published} (a lower bound, fig.)`,
        iv.lo > nbd.value
          ? 'above that bound over the whole interval; how it compares with the mounts’ actual rate cannot be said'
          : iv.hi < nbd.value
            ? 'below that bound: the NBD mounts read faster'
            : 'straddles that bound',
      ]);
    }
  }
  // Threads at an RTT: one handler thread serves faults one after another.
  const thr = okRows(ds).filter(
    (r) => r.scenario === 'read-random' && r.source === 'remote' && (r.designSpace?.vmaSpan ?? 1) === 1 && r.throughputMibps !== null,
  );
  const label = (r: RunRow) =>
    r.strategy === 'uffd' ? `uffd with ${r.handlerThreads ?? 1} handler thread${(r.handlerThreads ?? 1) > 1 ? 's' : ''}` : r.strategy;
  for (const l of [...new Set(thr.map(label))]) {
    const g = thr.filter((r) => label(r) === l);
    const counts = [...new Set(g.map((r) => r.designSpace!.appThreads))].sort((a, b) => a - b);
    if (counts.length < 2) continue;
    const [one, many] = [counts[0], counts.at(-1)!];
    const a = values(
      g.filter((r) => r.designSpace!.appThreads === many),
      (r) => r.throughputMibps,
    );
    const b = values(
      g.filter((r) => r.designSpace!.appThreads === one),
      (r) => r.throughputMibps,
    );
    const iv = bootstrapRatio(a, b);
    out.push([
      c,
      `${l}, random read at ${g[0].rttMs} ms: throughput with ${many} application threads / with ${one}`,
      ratioText(iv),
      '1 (no overlap of round trips)',
      above1(iv) === 'above'
        ? iv.value >= SCALES
          ? 'round trips overlap: throughput grows with threads'
          : `a gain under ${SCALES}×: faults are served nearly one after another`
        : above1(iv) === 'below'
          ? 'throughput falls with threads'
          : 'no gain resolved: faults served one after another',
    ]);
  }
  if (collapse !== null)
    out.unshift([
      c,
      '**verdict**',
      '',
      '',
      collapse
        ? '**the collapse reproduces without prefetch, for both mechanisms alike (at most one chunk per round trip); what prefetch and threads change: rows below**'
        : '**the collapse does not reproduce here (rows below)**',
    ]);
  return out;
}

export function claimsSection(input: SectionInput, thesisRows: RunRow[]): string {
  const ds = designSpaceRows(input);
  const push = matrixRows(input, 'push', (r) => r.scenario === 'write-track');
  const lines = [...claim1(thesisRows), ...claim2(push), ...claim3(ds), ...claim4(thesisRows, ds, input)];
  if (lines.length === 0) return 'No rows in these results decide any of the claims (the `thesis`, `push` and `design-space` matrices do).';
  return [
    `Each claim's verdict first, then the measures it rests on: a median or a ratio of two medians of this study with its ${BOOTSTRAP_NOTE} ` +
      '(for a ratio, each side resampled; n: repetitions, numerator/denominator for a ratio). A verdict follows from where the interval lies; ' +
      'where it spans the comparison value the data do not decide. The thesis’s values are read off its figures where marked (fig.).',
    mdTable(['claim', 'measure', 'this study [95 % CI] (n)', 'compared with', 'verdict'], lines),
  ].join('\n\n');
}
