// Several results/<run-id> directories analysed together (`faultlab chart` and
// `faultlab paper` with --in given more than once): their rows concatenated,
// each row tagged with its run's id so figures can say where their data came from.
import { existsSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadEnv, type RunEnv } from './env.js';
import { loadRuns, type RunRow } from './runs.js';

export interface LoadedRun {
  /** env.json's run_id, else the directory's name. */
  id: string;
  dir: string;
  /** null when the directory has no env.json (`chart` does not need one). */
  env: RunEnv | null;
}

export interface LoadedRuns {
  runs: LoadedRun[];
  /** Every row of every run, in --in order; row.runId is its run's id. */
  rows: RunRow[];
}

/**
 * Load runs.csv (and env.json where present) from each directory. `envRequired`
 * makes a missing env.json of the first directory an error (the paper's set-up
 * table is drawn from it).
 */
export function loadRunDirs(dirs: string[], opts: { envRequired?: boolean } = {}): LoadedRuns {
  if (dirs.length === 0) throw new Error('no results directory given');
  const runs: LoadedRun[] = [];
  const rows: RunRow[] = [];
  dirs.forEach((d, i) => {
    const dir = resolve(d);
    const csv = join(dir, 'runs.csv');
    if (!existsSync(csv)) throw new Error(`${csv} not found`);
    const env = (i === 0 && opts.envRequired) || existsSync(join(dir, 'env.json')) ? loadEnv(dir) : null;
    const id = env?.run_id ?? basename(dir);
    const same = runs.find((r) => r.id === id);
    if (same) throw new Error(`${dir} and ${same.dir} hold the same run (${id}); give each run once`);
    runs.push({ id, dir, env });
    for (const r of loadRuns(csv)) rows.push({ ...r, runId: id });
  });
  return { runs, rows };
}
