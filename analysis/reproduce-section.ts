// "How to reproduce": the one command that made these results, at which
// commit, and how long it took, from the study's own env.json (study-env.ts).
// Runs made one by one (not by `faultlab study`) are named as such, with each
// run's commit and times, and no study duration is claimed for them.
import type { RunEnv } from './env.js';
import { mdTable } from './format.js';
import type { SectionInput } from './section-input.js';
import type { StudyEnv } from './study-env.js';

/** 5400 -> "1 h 30 min", 605 -> "10 min 5 s", 42 -> "42 s". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '–';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h} h ${m} min`;
  if (m > 0) return `${m} min ${s % 60} s`;
  return `${s} s`;
}

const secondsBetween = (a?: string | null, b?: string | null): number | null => {
  if (!a || !b) return null;
  const d = (Date.parse(b) - Date.parse(a)) / 1000;
  return Number.isFinite(d) && d >= 0 ? d : null;
};

const orNot = (v: unknown) => (v === undefined || v === null || v === '' ? 'not recorded' : String(v));

/** The command as it was given (env.json argv), else rebuilt from the study's flags. */
function studyCommand(s: StudyEnv): string {
  if (s.argv?.length && s.argv[0] === 'study') return `npx faultlab ${s.argv.join(' ')}`;
  return `npx faultlab study${s.quick ? ' --quick' : ''}${s.allow_dirty ? ' --allow-dirty' : ''}`;
}

/** The same study: one folder's env.json read through several of its matrix runs. */
const studyKey = (s: StudyEnv) => `${s.commit ?? ''}\u0000${s.started ?? ''}`;

function oneStudy(s: StudyEnv, runs: { id: string; env: RunEnv | null }[]): string {
  const lastRunEnd = runs
    .map((r) => r.env?.finished)
    .filter((f): f is string => !!f)
    .sort()
    .at(-1);
  const done = s.complete === true && !!s.finished;
  const duration = done
    ? typeof s.seconds === 'number'
      ? `${formatDuration(s.seconds)} of running${s.resumed?.length ? ` over ${s.resumed.length + 1} invocations (resumed ${s.resumed.length}×)` : ''}` +
        (secondsBetween(s.started, s.finished) !== null ? `; ${formatDuration(secondsBetween(s.started, s.finished)!)} from start to finish` : '')
      : `${formatDuration(secondsBetween(s.started, s.finished) ?? NaN)} from start to finish`
    : `**not recorded: the study's env.json records no finish** (it was still running, stopped, or this paper was filled before the study wrote its end)` +
      (secondsBetween(s.started, lastRunEnd) !== null
        ? `; its last matrix here ended ${formatDuration(secondsBetween(s.started, lastRunEnd)!)} after the start`
        : '');
  const head = mdTable(
    ['', ''],
    [
      ['command', `\`${studyCommand(s)}\``],
      [
        'commit',
        `${orNot(s.commit)}${s.allow_dirty || s.dirty ? ' **(--allow-dirty: the tree had uncommitted changes, so this commit alone does not reproduce it)**' : ''}`,
      ],
      ['kind', s.quick ? '`--quick` (the smoke test: fewer cells and repetitions, not for conclusions)' : 'full'],
      ['started / finished', `${orNot(s.started)} / ${orNot(s.finished)}`],
      ['time taken', duration],
      ['failed cells', s.failed_cells === undefined ? 'not recorded' : String(s.failed_cells)],
      ['machine', `${orNot(s.cpus)} cores, ${orNot(s.cpu_model)}, kernel ${orNot(s.kernel)}`],
    ],
  );
  const per = s.seconds_per_matrix ?? {};
  const matrices = (s.matrices ?? []).map((m) => [
    m.name,
    m.matrix ?? m.name,
    m.cells ?? '–',
    m.repeat ?? 'the matrix’s own',
    per[m.name] === undefined ? '–' : formatDuration(per[m.name]),
    m.paper === false ? 'no' : 'yes',
  ]);
  // No row for the paper step: the study records its time only after filling the paper, so a row
  // would differ between the study's own fill and a later `faultlab paper` (env.json keeps it).
  return [
    'These results are one `faultlab study` (scenarios/study.json: every matrix the paper reads, at one commit, into one folder), from its env.json:',
    head,
    ...(matrices.length ? [mdTable(['folder', 'matrix', 'cells', 'repetitions', 'time', 'in the paper'], matrices)] : []),
  ].join('\n\n');
}

/** One line per run not made by the study: its matrix, commit and times. */
function looseRuns(runs: { id: string; env: RunEnv | null }[]): string {
  return mdTable(
    ['run', 'matrix', 'commit', 'started / finished', 'time taken'],
    runs.map((r) => {
      const e = r.env ?? {};
      const d = secondsBetween(e.started, e.finished);
      return [r.id, orNot(e.matrix), orNot(e.commit), `${orNot(e.started)} / ${orNot(e.finished)}`, d === null ? 'not recorded' : formatDuration(d)];
    }),
  );
}

export function reproduceSection({ runs = [] }: SectionInput): string {
  if (runs.length === 0) return 'No runs were given, so there is nothing to reproduce.';
  const from = runs.filter((r) => r.study);
  const loose = runs.filter((r) => !r.study);
  const studies = [...new Map(from.map((r) => [studyKey(r.study!), r.study!])).values()];
  if (studies.length === 1 && loose.length === 0) return oneStudy(studies[0], runs);
  const parts = [
    studies.length === 0
      ? `These results are not from one \`faultlab study\`: the ${runs.length === 1 ? 'run was' : `${runs.length} runs were`} made one by one, so they record no study's duration, and commits may differ between them:`
      : `These results are not from one \`faultlab study\`: ${studies.length > 1 ? `they come from ${studies.length} different studies` : 'one study'}` +
        `${loose.length ? `${studies.length > 1 ? ', and ' : ' and '}${loose.length} run${loose.length > 1 ? 's' : ''} made one by one` : ''}, so no one duration describes them:`,
    looseRuns(runs),
  ];
  return parts.join('\n\n');
}
