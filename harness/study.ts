// `faultlab study`: every matrix the paper uses (scenarios/study.json), at one
// commit, into one folder (<out>/<matrix>/runs.csv + env.json each, and the
// study's own env.json), resumable, then the figures and the paper from it.
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyFilters, cellId, loadMatrix, type Matrix, type MatrixCell } from './matrix.js';
import { doneCellIds, estimateMs, runMatrix, type RunOptions } from './runner.js';
import { collectEnv, projectCommit } from './env.js';
import { StudyProgress, formatSeconds } from './progress.js';
import { UsageError } from './errors.js';
import { validateCell } from './cell.js';
import { writePaperInputs } from './paper-inputs.js';
import { nbdkitMissing, usesNbdkit } from './nbdkit.js';
import { readStudyEnv } from '../analysis/study-env.js';

export const defaultStudyList = fileURLToPath(
  new URL(existsSync(fileURLToPath(new URL('../scenarios', import.meta.url))) ? '../scenarios/study.json' : '../../scenarios/study.json', import.meta.url),
);
const repoRoot = dirname(dirname(defaultStudyList));
export const committedPaper = join(repoRoot, 'paper', 'paper.md');

/** What --quick runs for a matrix: another matrix, and/or some of its groups, filters, fewer repetitions. */
export interface Selection {
  matrix: string;
  groups?: string[];
  filter?: string[];
  repeat?: number;
}

export interface StudyEntry {
  /** Its folder under the study's --out. */
  name: string;
  full: Selection;
  /** null: --quick skips it. */
  quick: Selection | null;
  /** Whether the paper reads it (inputs.json). */
  paper: boolean;
  /** 2 MiB pages it needs free. */
  hugepages: number;
}

const NAME = /^[a-z0-9-]+$/;

function selection(v: unknown, where: string, base: string): Selection {
  if (typeof v === 'string') return { matrix: v };
  if (!v || typeof v !== 'object' || Array.isArray(v)) throw new UsageError(`${where} must be a matrix name or {matrix, groups, filter, repeat}`);
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!['matrix', 'groups', 'filter', 'repeat'].includes(k)) throw new UsageError(`${where}: unknown key '${k}'`);
  const strings = (x: unknown, k: string) => {
    if (x === undefined) return undefined;
    if (!Array.isArray(x) || !x.every((s) => typeof s === 'string')) throw new UsageError(`${where}.${k} must be a list of strings`);
    return x as string[];
  };
  if (o.matrix !== undefined && typeof o.matrix !== 'string') throw new UsageError(`${where}.matrix must be a matrix name`);
  if (o.repeat !== undefined && !(Number.isInteger(o.repeat) && (o.repeat as number) >= 1))
    throw new UsageError(`${where}.repeat must be a whole number from 1`);
  return {
    matrix: (o.matrix as string | undefined) ?? base,
    groups: strings(o.groups, 'groups'),
    filter: strings(o.filter, 'filter'),
    repeat: o.repeat as number | undefined,
  };
}

/** scenarios/study.json (or a test's list): the matrices, in order. */
export function loadStudyList(path: string): StudyEntry[] {
  if (!existsSync(path)) throw new UsageError(`study list ${path} does not exist`);
  let doc: { matrices?: unknown };
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${path}: not JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(doc.matrices) || doc.matrices.length === 0) throw new UsageError(`${path}: "matrices" must be a non-empty list`);
  const seen = new Set<string>();
  return doc.matrices.map((raw, i) => {
    const e = raw as Record<string, unknown>;
    const where = `${path}: matrices[${i}]`;
    if (typeof e.matrix !== 'string') throw new UsageError(`${where}.matrix must be a matrix name`);
    const name = (e.name as string | undefined) ?? e.matrix;
    if (typeof name !== 'string' || !NAME.test(name)) throw new UsageError(`${where}.name must be a name of a-z, 0-9 and -`);
    if (seen.has(name)) throw new UsageError(`${where}: '${name}' twice`);
    seen.add(name);
    const hugepages = e.hugepages ?? 0;
    if (!Number.isInteger(hugepages) || (hugepages as number) < 0) throw new UsageError(`${where}.hugepages must be a whole number`);
    return {
      name,
      full: { matrix: e.matrix },
      quick: e.quick === null ? null : selection(e.quick ?? {}, `${where}.quick`, e.matrix),
      paper: e.paper !== false,
      hugepages: hugepages as number,
    };
  });
}

/** A selection's matrix and cells, every cell's parameters checked (one line naming the matrix and group). */
export function selectCells(s: Selection): { m: Matrix; cells: MatrixCell[] } {
  const m = loadMatrix(s.matrix);
  let cells = applyFilters(m.cells, s.filter ?? []);
  if (s.groups) {
    const unknown = s.groups.filter((g) => !m.cells.some((c) => c.group === g));
    if (unknown.length) throw new UsageError(`matrix '${m.name}' has no group ${unknown.join(', ')}`);
    cells = cells.filter((c) => s.groups!.includes(c.group));
  }
  // The repetitions are part of what a cell measures, so of its id: an
  // overridden cell is another cell, not the full matrix's under its name.
  if (s.repeat !== undefined)
    cells = cells.map((c) => {
      const o = { ...c, params: { ...c.params, repeat: s.repeat! } };
      return { ...o, id: cellId(o) };
    });
  if (cells.length === 0) throw new UsageError(`no cell of matrix '${m.name}' is selected`);
  for (const c of cells) {
    if (c.kind !== 'cell') continue;
    try {
      validateCell(c.params);
    } catch (e) {
      throw new UsageError(`matrix '${m.name}', group '${c.group}' (cell ${c.id}): ${(e as Error).message}`);
    }
  }
  return { m, cells };
}

export interface StudyOptions {
  out: string;
  quick: boolean;
  allowDirty: boolean;
  list: string;
  /** The paper to fill: default the committed one for a full study, a copy in <out>/paper/ for --quick. */
  paper?: string;
  skipPaper?: boolean;
  cellTimeoutMs: number;
  /** Another study folder of the same list: the paper's spread section compares its paper matrices with this study's. */
  spreadWith?: string;
}

export interface StudyResult {
  dir: string;
  complete: boolean;
  failedCells: number;
  paperPath?: string;
  seconds: number;
}

/** Reserve `pages` free 2 MiB huge pages (root only); returns how to give them back, or null where none were needed or possible. */
function reserveHugePages(pages: number): { restore: () => void; note: string } | null {
  const base = '/sys/kernel/mm/hugepages/hugepages-2048kB';
  if (!pages || !existsSync(`${base}/nr_hugepages`)) return null;
  const free = Number(readFileSync(`${base}/free_hugepages`, 'utf8'));
  if (free >= pages) return null;
  const total = Number(readFileSync(`${base}/nr_hugepages`, 'utf8'));
  if (process.geteuid?.() !== 0) return null; // its cells fail with the advice to reserve them
  try {
    writeFileSync(`${base}/nr_hugepages`, String(total + pages - free));
  } catch {
    return null;
  }
  const got = Number(readFileSync(`${base}/free_hugepages`, 'utf8'));
  return {
    note: `vm.nr_hugepages ${total} -> ${total + pages - free} for this matrix (${got} free), then back to ${total}`,
    restore: () => writeFileSync(`${base}/nr_hugepages`, String(total)),
  };
}

const writeJson = (path: string, doc: object) => writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');

export async function runStudy(o: StudyOptions): Promise<StudyResult> {
  const commit = projectCommit();
  const dirty = commit.endsWith('-dirty');
  if (dirty && !o.allowDirty)
    throw new UsageError(
      `the working tree has uncommitted changes (commit ${commit}): commit them first, so the study runs at one commit; or pass --allow-dirty (recorded in env.json, and the paper says so)`,
    );
  const entries = loadStudyList(o.list);
  const plan = entries.flatMap((e) => {
    const sel = o.quick ? e.quick : e.full;
    return sel ? [{ e, sel, ...selectCells(sel) }] : [];
  });
  if (plan.length === 0) throw new UsageError(`${o.list}: --quick selects no matrix`);
  const paperNames = plan.filter((p) => p.e.paper).map((p) => p.e.name);
  const spreadWith = o.spreadWith === undefined ? null : checkSpreadWith(o, paperNames);

  const dir = resolve(o.out);
  const envPath = join(dir, 'env.json');
  const found = readStudyEnv(dir);
  if ('why' in found && found.why !== 'none')
    throw new UsageError(
      `${dir} holds something other than a study (its env.json ${found.why === 'not-json' ? `is not JSON: ${found.detail}` : 'has no "study": true'}): give another --out`,
    );
  const resumed = 'env' in found;
  let previous: Record<string, unknown> = {};
  if ('env' in found) {
    previous = found.env as unknown as Record<string, unknown>;
    if (previous.commit !== commit)
      throw new UsageError(`${dir} was started at commit ${previous.commit}, this tree is at ${commit}: a study runs at one commit (give another --out)`);
    if (previous.quick !== o.quick)
      throw new UsageError(`${dir} is a ${previous.quick ? '--quick' : 'full'} study: run it the same way, or give another --out`);
  } else if (existsSync(dir) && readdirSync(dir).length > 0)
    throw new UsageError(`${dir} is not empty and holds no study (no env.json): give a new folder, or a study folder to continue`);

  // Progress over every cell left in every matrix; a resumed study keeps its finished cells.
  const todo = plan.map((p) => {
    const done = doneCellIds(join(dir, p.e.name, 'runs.csv'));
    return { ...p, done, left: p.cells.filter((c) => !done.has(c.id)) };
  });
  // nbdkit-delay cells left to run need nbdkit: one message before the first
  // cell, not a failed cell each an hour into the study.
  const nbdkitUsers = todo.filter((t) => t.left.some((c) => usesNbdkit(c)));
  const noNbdkit = nbdkitUsers.length ? nbdkitMissing() : null;
  if (noNbdkit)
    throw new UsageError(
      `matrices ${nbdkitUsers.map((t) => t.e.name).join(', ')} have cells with latency nbdkit-delay, but ${noNbdkit}: install it, or give a --list without them`,
    );
  mkdirSync(dir, { recursive: true });
  const totalCells = todo.reduce((n, t) => n + t.cells.length, 0);
  const leftCells = todo.reduce((n, t) => n + t.left.length, 0);
  const progress = new StudyProgress(
    todo.reduce((s, t) => s + t.left.reduce((a, c) => a + estimateMs(c), 0), 0),
    totalCells - leftCells,
    totalCells,
  );
  const started = (previous.started as string | undefined) ?? new Date().toISOString();
  const t0 = Date.now();
  const env = collectEnv(); // doctor's machine floors and virtualisation verdict, once for the study
  const studyDoc = (extra: Record<string, unknown>) => ({
    ...env,
    study: true,
    quick: o.quick,
    allow_dirty: o.allowDirty,
    dirty,
    commit,
    list: o.list,
    ...(spreadWith ? { spread_with: spreadWith } : {}),
    started,
    ...(resumed ? { resumed: [...((previous.resumed as string[]) ?? []), new Date().toISOString()] } : {}),
    matrices: todo.map((t) => ({
      name: t.e.name,
      matrix: t.sel.matrix,
      groups: t.sel.groups,
      filter: t.sel.filter,
      repeat: t.sel.repeat,
      cells: t.cells.length,
      paper: t.e.paper,
    })),
    argv: process.argv.slice(2),
    ...extra,
  });
  writeJson(envPath, studyDoc({ finished: null, complete: false }));
  console.error(
    `faultlab study${o.quick ? ' --quick' : ''}: ${todo.map((t) => `${t.e.name} (${t.cells.length})`).join(', ')} at ${commit} -> ${dir}` +
      (resumed ? `; resuming, ${totalCells - leftCells} of ${totalCells} cells kept` : ''),
  );

  let failedCells = 0;
  let complete = true;
  const durations: Record<string, number> = { ...((previous.seconds_per_matrix as Record<string, number>) ?? {}) };
  for (const t of todo) {
    const runDir = join(dir, t.e.name);
    const runEnv = join(runDir, 'env.json');
    const finished = t.left.length === 0 && existsSync(runEnv) ? JSON.parse(readFileSync(runEnv, 'utf8')) : null;
    if (finished?.complete === true) {
      failedCells += Number(finished.failed_cells ?? 0);
      continue;
    }
    // One commit: tracked files edited (or a commit made) while the study runs would mix code versions.
    const now = projectCommit();
    if (now !== commit && !o.allowDirty) {
      console.error(
        `study: stopped before ${t.e.name}: the tree changed during the study (${commit} at the start, ${now} now); restore it and run the same command to continue`,
      );
      complete = false;
      break;
    }
    const huge = reserveHugePages(t.e.hugepages);
    if (huge) console.error(`study: ${huge.note}`);
    const m0 = Date.now();
    const opts: RunOptions = {
      out: dirname(dir),
      // The run id names the folder under results/ (the paper says `results/<run_id>`).
      runId: `${basename(dir)}/${t.e.name}`,
      resume: existsSync(join(runDir, 'runs.csv')),
      cellTimeoutMs: o.cellTimeoutMs,
      progress: (estimates) => progress.matrix(t.e.name, estimates),
      extraEnv: { study: { folder: dir, commit, quick: o.quick, allow_dirty: o.allowDirty }, ...(huge ? { hugepages_reserved: huge.note } : {}) },
    };
    let r;
    try {
      r = await runMatrix(t.m, t.cells, opts);
    } finally {
      huge?.restore();
    }
    durations[t.e.name] = (durations[t.e.name] ?? 0) + (Date.now() - m0) / 1000;
    failedCells += r.failed;
    if (!r.complete) {
      complete = false;
      break;
    }
  }
  progress.end();
  const seconds = (Date.now() - t0) / 1000;
  const total = Number(previous.seconds ?? 0) + seconds;
  const result: StudyResult = { dir, complete, failedCells, seconds: total };
  const finished = complete ? new Date().toISOString() : null;
  const writeEnv = () =>
    writeJson(
      envPath,
      studyDoc({
        finished,
        complete,
        failed_cells: failedCells,
        seconds: Math.round(total),
        seconds_per_matrix: Object.fromEntries(Object.entries(durations).map(([k, v]) => [k, Math.round(v)])),
        ...(result.paperPath ? { paper: result.paperPath } : {}),
        ...(complete ? {} : { interrupted: true }),
      }),
    );
  // Written before the paper too: its reproduce section reads how long the study took.
  writeEnv();
  if (complete && !o.skipPaper) {
    const runs = todo.filter((t) => t.e.paper).map((t) => join(dir, t.e.name));
    if (runs.length) {
      const p0 = Date.now();
      const spread = spreadWith ? [...runs, ...paperNames.map((n) => join(spreadWith, n))] : [];
      result.paperPath = await writePaper(o, dir, runs, commit, spread);
      durations.paper = (Date.now() - p0) / 1000;
      writeEnv();
    }
  }
  const failedNote = failedCells ? ` with ${failedCells} failed cells (the paper's failures table names them)` : '';
  console.error(`study: ${complete ? `complete${failedNote}` : 'INTERRUPTED'} in ${formatSeconds(total)}${resumed ? ' (all invocations)' : ''}`);
  return result;
}

/**
 * --spread-with: a finished study folder of the same kind (--quick or not)
 * holding a run of every paper matrix of this one; refused in one line
 * otherwise, before anything runs. Returns it resolved.
 */
function checkSpreadWith(o: StudyOptions, paperNames: string[]): string {
  const given = o.spreadWith!;
  const other = resolve(given);
  const refuse = (why: string) => new UsageError(`--spread-with ${given}: ${why}`);
  if (o.skipPaper) throw refuse('it feeds the paper, which --skip-paper skips');
  if (other === resolve(o.out)) throw refuse("that is this study's own folder; give another study of the same list");
  const found = readStudyEnv(other);
  if ('why' in found) {
    if (found.why === 'none') throw refuse('not a study folder (no env.json); give a folder `faultlab study --out` made');
    throw refuse(found.why === 'not-json' ? `env.json is not JSON (${found.detail})` : 'not a study folder (its env.json has no "study": true)');
  }
  const doc = found.env;
  if (doc.quick !== o.quick)
    throw refuse(`a ${doc.quick ? '--quick' : 'full'} study; this one is ${o.quick ? '--quick' : 'full'}: compare studies of one kind`);
  if (doc.complete !== true) throw refuse(`an unfinished study; finish it first (faultlab study --out ${given})`);
  const missing = paperNames.filter((n) => !existsSync(join(other, n, 'runs.csv')) || !existsSync(join(other, n, 'env.json')));
  if (missing.length) throw refuse(`lacks matrix ${missing.join(', ')} (no <name>/runs.csv and env.json); give a study of the same list`);
  return other;
}

/** Fill the paper from the study's runs (and the spread runs); write inputs.json beside it. A --quick study fills a copy (like `npm start`). */
async function writePaper(o: StudyOptions, dir: string, runs: string[], commit: string, spread: string[]): Promise<string> {
  let paperPath = o.paper ?? (o.quick ? join(dir, 'paper', 'paper.md') : committedPaper);
  paperPath = resolve(paperPath);
  if (!existsSync(paperPath)) {
    mkdirSync(dirname(paperPath), { recursive: true });
    copyFileSync(committedPaper, paperPath);
    const note = `> This copy's tables and figures come from the study in \`${dir}\`${o.quick ? ' (--quick: fewer cells and repetitions, not for conclusions)' : ''}; its prose was written about the committed runs.\n\n`;
    writeFileSync(paperPath, note + readFileSync(paperPath, 'utf8'));
  }
  writePaperInputs(
    join(dirname(paperPath), 'inputs.json'),
    runs,
    `faultlab study${o.quick ? ' --quick' : ''} at ${commit}${o.allowDirty ? ' (--allow-dirty)' : ''}${spread.length ? `, spread with ${o.spreadWith}` : ''}`,
    spread,
  );
  const { generatePaper } = await import('../analysis/paper.js'); // vega: loaded only when drawing
  const p = await generatePaper({ inDir: runs, paperPath, spreadIn: spread });
  for (const w of p.warnings) console.error(`warning: ${w}`);
  return p.paperPath;
}
