// The generated sections of paper.md, one function per marker name. Each
// returns markdown and never an empty string, so no marker is left blank.
import { claimsSection } from './claims-section.js';
import { splitDesignSpaceRuns } from './design-space.js';
import { designSpaceSection } from './design-space-section.js';
import { reproduceSection } from './reproduce-section.js';
import { setupCostSection } from './setup-cost-section.js';
import { thesisVsStudy } from './comparison.js';
import { decompose } from './decomposition.js';
import type { RunEnv } from './env.js';
import { formatInterval, formatMibps, formatNs, formatRatio, formatValue, mdTable } from './format.js';
import { latencyMethodRuns } from './figures/latency-methods.js';
import { isPushScenario } from './push.js';
import { pushSection } from './push-section.js';
import { compareMethods, methodLabel, okRows, type RunRow } from './runs.js';
import { bytes } from './slice.js';
import type { SectionInput } from './section-input.js';
import { sameMachineRatios } from './ratios.js';
import { runSpreadMarkdown } from './spread.js';
import { BOOTSTRAP_NOTE, bootstrapMedian, groupBy, values } from './stats.js';
import { handlerSection, latencyMethodsSection, migrationSection, residentSection, withoutMatrix } from './study-sections.js';

/** Median [95 % CI] of a field over a group; '–' when no row has it. */
function medCi(g: RunRow[], f: (r: RunRow) => number | null, fmt: (v: number | null) => string): string {
  const xs = values(g, f);
  return xs.length ? formatInterval(bootstrapMedian(xs), fmt) : '–';
}

/** The runner's list, else the features the doctor read from UFFDIO_API. */
function uffdFeatures(env: RunEnv): string {
  const doctor = (env.doctor?.uffd_api as { features?: unknown } | undefined)?.features;
  const list = env.uffd_features?.length ? env.uffd_features : Array.isArray(doctor) ? doctor.map(String) : [];
  return list.length ? list.join(', ') : 'not recorded';
}

/**
 * The rows the thesis tables (and push) may use: without a design-space run's when other runs are combined with it
 * (splitDesignSpaceRuns), and never a latency-methods run's (its server-delay rows are the latency-methods section's
 * baseline, not more thesis cells; the figures leave them out alike).
 */
const thesisRows = (rows: RunRow[]) => {
  const methodRuns = latencyMethodRuns(rows);
  return splitDesignSpaceRuns(rows.filter((r) => !methodRuns.has(r.runId))).thesis;
};

const orNot = (v: unknown) => (v === undefined || v === null || v === '' ? 'not recorded' : String(v));

export function setupSection({ env, rows: all, runId, runs = [] }: SectionInput): string {
  // With several runs the table describes the first; the others get a line each.
  const rows = runs.length > 1 ? all.filter((r) => r.runId === runs[0].id) : all;
  const ok = okRows(rows).length;
  const others = runs.slice(1).map((r) => {
    const rs = all.filter((x) => x.runId === r.id);
    const okN = okRows(rs).length;
    const e = r.env ?? {};
    const differs = (['kernel', 'cpu_model', 'commit'] as const).filter((k) => e[k] !== undefined && e[k] !== env[k]).map((k) => `${k} ${e[k]}`);
    return [
      `combined with ${r.id}`,
      `matrix ${orNot(e.matrix)}, ${orNot(e.started)} / ${orNot(e.finished)}, ` +
        `${e.complete === undefined ? 'completeness not recorded' : e.complete ? 'complete' : '**incomplete**'}, ` +
        `${rs.length} rows (${okN} ok, ${rs.length - okN} failed)` +
        (differs.length ? `; differs: ${differs.join(', ')}` : '; same kernel, CPU and commit'),
    ];
  });
  const latency = env.latency ?? [...new Set(rows.map((r) => r.latency).filter(Boolean))].join(', ');
  const table = mdTable(
    ['', ''],
    [
      ['run id', runs.length > 1 ? runs[0].id : runId],
      ['matrix', orNot(env.matrix)],
      ['started / finished', `${orNot(env.started)} / ${orNot(env.finished)}`],
      ['complete', env.complete === undefined ? 'not recorded' : env.complete ? 'yes' : '**no: the run stopped early**'],
      ['kernel', orNot(env.kernel)],
      ['kernel command line', orNot(env.kernel_cmdline)],
      ['CPU', orNot(env.cpu_model)],
      ['cores', orNot(env.cpus)],
      ['privileges', orNot(env.privileges)],
      ['userfaultfd path', orNot(env.uffd_path)],
      ['userfaultfd features', uffdFeatures(env)],
      ['latency emulation', orNot(latency)],
      ['Node.js', orNot(env.node)],
      ['faultlab commit', orNot(env.commit)],
      ['rows', `${rows.length} (${ok} ok, ${rows.length - ok} failed)`],
      ...studyLines(env),
      ...others,
    ],
  );
  const warn = env.complete === false ? '\n\n**This run is incomplete: its numbers are preliminary and must not be cited as results.**' : '';
  return `${table}${warn}`;
}

/** Lines only runs that record them get (`faultlab study`, doctor's machine floors): older runs' tables stay as they were. */
function studyLines(env: SectionInput['env']): string[][] {
  const lines: string[][] = [];
  if (env.study)
    lines.push([
      'study',
      `one \`faultlab study${env.study.quick ? ' --quick' : ''}\` at one commit` +
        (env.study.allow_dirty ? ' **with --allow-dirty: the tree had uncommitted changes, so the commit alone does not reproduce it**' : ''),
    ]);
  const v = env.virtualization;
  if (v) {
    const us = (ns: number | null | undefined) => (typeof ns === 'number' ? `${(ns / 1000).toFixed(2)} us` : 'not measured');
    lines.push([
      'machine floors (doctor)',
      `minor fault ${us(v.minor_fault_ns)}, syscall ${us(v.syscall_ns)}; ${v.virtualized ? `virtualised (${(v.reasons ?? []).join('; ')})` : 'no sign of virtualisation'}`,
    ]);
  }
  return lines;
}

export function figuresSection({ figures, skippedFigures }: SectionInput): string {
  const parts = figures.map((f, i) => `![${f.name}](${f.png})\n\n*Figure ${i + 1}.* ${f.caption} ([SVG](${f.svg}), [Vega-Lite spec](${f.vl}))`);
  if (skippedFigures.length) parts.push(`Not drawn, because this run has no rows for them: ${skippedFigures.join(', ')}.`);
  return parts.length ? parts.join('\n\n') : 'No figures: this run has no ok rows.';
}

export function thesisVsStudySection({ rows, thesis }: SectionInput): string {
  const own = thesisRows(rows);
  const cmp = thesisVsStudy(own, thesis);
  const bound = (b: boolean | 'undecided' | null) =>
    b === null
      ? ''
      : b === 'undecided'
        ? ' (thesis bound: our interval straddles it)'
        : ` (thesis bound ${b ? 'holds' : 'does not hold'} over our whole interval)`;
  const table = mdTable(
    ['measure', 'thesis method', 'thesis value', 'as compared', 'this study', 'our median [95 % CI] (n)', 'ratio ours/thesis (across machines)'],
    cmp.map((c) => [
      c.measure,
      c.method,
      c.thesisAsPublished,
      formatValue(c.thesisValue, c.unit),
      c.ourMethod,
      c.ours === null ? 'not measured' : `${formatInterval(c.ours, (v) => formatValue(v, c.unit))} (${c.reps})`,
      `${formatRatio(c.ratio)}${bound(c.boundHolds)}`,
    ]),
  );
  const ratios = sameMachineRatios(own, thesis).filter((r) => r.ours !== null || r.thesis !== null);
  const ratioTable = mdTable(
    ['same-machine ratio (0 ms RTT)', 'this study [95 % CI]', 'n (numerator/denominator)', "the thesis's (its own two values)"],
    ratios.map((r) => [
      r.def.label,
      r.ours ? formatInterval(r.ours, formatRatio) : 'not measured',
      r.ours ? `${r.ours.n}/${r.ours.nDen}` : '–',
      r.thesis === null ? 'not measured there' : `${formatRatio(r.thesis)}${r.thesisApproximate ? ' (from a value read off a figure)' : ''}`,
    ]),
  );
  return [
    table,
    `Thesis machine: ${thesis.machine.short}; latency there: ${thesis.latency_emulation}. ` +
      `Units: ${thesis.unit_conversion} Values marked (fig.) were read off the thesis's plots and are approximate. ` +
      `Source of every value: analysis/thesis-reference.json. Intervals: ${BOOTSTRAP_NOTE}.`,
    'Absolute values move between machines and between days on one machine, so ours/thesis mixes the two machines with the two implementations. ' +
      'A ratio of two measures from one run cancels the machine to first order; each of ours sits beside the ratio of the thesis’s own two values ' +
      '(its interval: each side resampled separately, ratio of the medians):',
    ratioTable,
  ].join('\n\n');
}

/** Medians per cell shape (scenario, method, RTT, chunk, CPU placement); floors, transport and push rows (own sections) excluded. */
export function resultsSummarySection({ rows }: SectionInput): string {
  const ok = okRows(thesisRows(rows)).filter((r) => r.scenario !== 'floor' && r.scenario !== 'transport' && !isPushScenario(r.scenario));
  if (ok.length === 0) return 'No ok first-chunk or read rows in these results (write-track and migrate rows: see the push section).';
  const groups = [...groupBy(ok, (r) => [r.scenario, methodLabel(r), r.rttMs, r.regionBytes, r.chunkBytes, r.cpus, r.handlerThreads].join('\u0000')).values()];
  groups.sort(
    (a, b) =>
      a[0].scenario.localeCompare(b[0].scenario) ||
      compareMethods(methodLabel(a[0]), methodLabel(b[0])) ||
      a[0].rttMs - b[0].rttMs ||
      (a[0].regionBytes ?? 0) - (b[0].regionBytes ?? 0) ||
      a[0].chunkBytes - b[0].chunkBytes ||
      a[0].cpus.localeCompare(b[0].cpus),
  );
  const table = mdTable(
    ['scenario', 'method', 'RTT (ms)', 'region', 'chunk', 'cpus', 'threads', 'n', 'first access', 'throughput', 'fault p50', 'fault p99'],
    groups.map((g) => [
      g[0].scenario,
      methodLabel(g[0]),
      g[0].rttMs,
      g[0].regionBytes === null ? '–' : bytes(g[0].regionBytes),
      bytes(g[0].chunkBytes),
      g[0].cpus,
      g[0].handlerThreads ?? '–',
      g.length,
      medCi(g, (r) => r.firstAccessNs, formatNs),
      medCi(g, (r) => r.throughputMibps, formatMibps),
      medCi(g, (r) => r.faultNsP50, formatNs),
      medCi(g, (r) => r.faultNsP99, formatNs),
    ]),
  );
  return `Each value: the median over the cell's n repetitions [its ${BOOTSTRAP_NOTE}; no interval when n = 1].\n\n${table}`;
}

export function floorsSection({ rows }: SectionInput): string {
  const ok = okRows(thesisRows(rows));
  const floors = ok.filter((r) => r.scenario === 'floor');
  if (floors.length === 0) return 'No floor rows in this run.';
  const floorTable = mdTable(
    ['floor', 'cpus', 'n', 'p50 (median [95 % CI])', 'p99 (median [95 % CI])'],
    [...groupBy(floors, (r) => `${r.strategy}\u0000${r.cpus}`).values()].map((g) => [
      g[0].strategy,
      g[0].cpus,
      g.length,
      medCi(g, (r) => r.faultNsP50, formatNs),
      medCi(g, (r) => r.faultNsP99, formatNs),
    ]),
  );
  const transport = ok.filter((r) => r.scenario === 'transport');
  const transportTable = transport.length
    ? mdTable(
        ['transport', 'chunk', 'RTT (ms)', 'n', 'request/response p50 (median [95 % CI])'],
        [...groupBy(transport, (r) => `${r.strategy}\u0000${r.chunkBytes}\u0000${r.rttMs}`).values()].map((g) => [
          g[0].strategy,
          bytes(g[0].chunkBytes),
          g[0].rttMs,
          g.length,
          medCi(g, (r) => r.faultNsP50, formatNs),
        ]),
      )
    : 'No transport rows in this run.';
  const d = decompose(ok);
  const decompTable = d.length
    ? mdTable(
        [
          'method',
          'chunk',
          'fault p50 [95 % CI] (n)',
          'floor',
          'floor time [95 % CI] (n)',
          'transport [95 % CI] (n)',
          'handling (rest)',
          'fault p50 / floor [95 % CI]',
        ],
        d.map((x) => [
          x.method,
          bytes(x.chunkBytes),
          `${formatInterval(x.total, formatNs)} (${x.total.n})`,
          x.floor,
          `${formatInterval(x.floorInterval, formatNs)} (${x.floorInterval.n})`,
          x.transport ? `${formatInterval(x.transport, formatNs)} (${x.transport.n})` : '–',
          x.belowFloor === 'clearly'
            ? `**${formatNs(x.handlingNs)}: below its floor**`
            : x.belowFloor === 'within'
              ? `${formatNs(x.handlingNs)} (within the intervals: ≈ 0)`
              : formatNs(x.handlingNs),
          formatInterval(x.overFloor, formatRatio),
        ]),
      )
    : 'No strategy has both a read-seq row at 0 ms RTT and its floor (and, for a remote source, a transport row).';
  const below = d.filter((x) => x.belowFloor === 'clearly').map((x) => x.method);
  return [
    `Medians over n repetitions with their ${BOOTSTRAP_NOTE}.`,
    floorTable,
    transportTable,
    'Decomposition of the median per-fault time (read-seq, 0 ms RTT, floors with the same CPU placement); handling = fault p50 - floor - transport, not clamped:',
    decompTable,
    ...(below.length
      ? [
          `${below.join(', ')} measured below ${below.length > 1 ? 'their floors' : 'its floor'}, beyond the intervals: ` +
            'the floor then includes a step the strategy takes outside its timed window, so the floor, not the strategy, is what this row questions.',
        ]
      : []),
  ].join('\n\n');
}

/** Every run's failures (a design-space run's too: some fail by design), with a run column when rows come from several runs. */
export function failuresSection({ rows }: SectionInput): string {
  const failed = rows.filter((r) => r.status !== 'ok');
  if (failed.length === 0) return 'No repetition failed.';
  const several = new Set(rows.map((r) => r.runId)).size > 1;
  const run = (r: RunRow) => (several ? [r.runId || '–'] : []);
  return mdTable(
    [...(several ? ['run'] : []), 'scenario', 'method', 'RTT (ms)', 'cpus', 'repetition', 'message'],
    failed.map((r) => [...run(r), r.scenario, methodLabel(r), r.rttMs, r.cpus, r.repetition, r.message || '(no message)']),
  );
}

/** Run-to-run spread: the runs given for it (`spreadRuns`), else the --in runs of every matrix given two or more times. */
export function runSpreadSection({ rows, runs = [], spreadRuns }: SectionInput): string {
  if (spreadRuns && spreadRuns.length) return runSpreadMarkdown(spreadRuns);
  const withMatrix = runs.filter((r) => r.env?.matrix);
  if (![...groupBy(withMatrix, (r) => r.env!.matrix!).values()].some((g) => g.length >= 2))
    return 'No two runs of one matrix were given, so there is no run-to-run spread to show.';
  return runSpreadMarkdown(withMatrix.map((r) => ({ id: r.id, matrix: r.env!.matrix, rows: rows.filter((x) => x.runId === r.id) })));
}

export const SECTIONS: Record<string, (i: SectionInput) => string> = {
  setup: setupSection,
  figures: figuresSection,
  'thesis-vs-study': thesisVsStudySection,
  'results-summary': resultsSummarySection,
  floors: floorsSection,
  failures: failuresSection,
  // The migrate matrix's rows have their own section (streaming-migration), so its runs stay out of push's serial-push table.
  push: (i) => pushSection({ ...i, rows: thesisRows(withoutMatrix(i, 'migrate')) }),
  'run-spread': runSpreadSection,
  'latency-methods': latencyMethodsSection,
  'handler-process': handlerSection,
  'resident-limit': residentSection,
  'streaming-migration': migrationSection,
  claims: (i) => claimsSection(i, thesisRows(i.rows)),
  'design-space': designSpaceSection,
  reproduce: reproduceSection,
  'setup-cost': (i) => setupCostSection(thesisRows(i.rows)),
};
