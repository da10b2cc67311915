// paper/inputs.json: the runs a paper is built from, in `faultlab paper --in`
// order (the first gives the set-up table), and the runs of its run-to-run
// spread section. `faultlab paper` without --in reads the inputs.json beside the
// paper; `faultlab paper --in` and `faultlab study` write it. Paths are
// relative to the folder that holds inputs.json, so it reads the same from any
// working directory.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { UsageError } from './errors.js';

export interface PaperInputs {
  /** Why these runs, or what made them (a study's folder and commit). */
  note?: string;
  runs: string[];
  /** The runs of the run-to-run spread section (`--spread-in`; a matrix given twice or more is compared); absent: the runs sharing a matrix. */
  spread?: string[];
}

export const inputsPathFor = (paperPath: string) => join(dirname(resolve(paperPath)), 'inputs.json');

/** The run folders an inputs.json names, resolved; one clear error for a missing or malformed file. */
export function readPaperInputs(path: string): string[] {
  return readPaperInputsDoc(path).runs;
}

/** inputs.json's runs and spread runs, resolved, and its note. */
export function readPaperInputsDoc(path: string): { runs: string[]; spread: string[]; note?: string } {
  if (!existsSync(path)) throw new UsageError(`${path} not found: give the runs with --in, or write it (faultlab study does)`);
  let doc: PaperInputs;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${path}: not JSON (${(e as Error).message})`);
  }
  if (!doc || !Array.isArray(doc.runs) || doc.runs.length === 0 || !doc.runs.every((r) => typeof r === 'string' && r.length > 0))
    throw new UsageError(`${path}: "runs" must be a non-empty list of results folders`);
  const spread = doc.spread ?? [];
  if (!Array.isArray(spread) || !spread.every((r) => typeof r === 'string' && r.length > 0))
    throw new UsageError(`${path}: "spread" must be a list of results folders`);
  const at = (r: string) => resolve(dirname(path), r);
  return { runs: doc.runs.map(at), spread: spread.map(at), ...(typeof doc.note === 'string' ? { note: doc.note } : {}) };
}

/** Write inputs.json: {note, runs, spread}, paths relative to its folder; no spread key when there are no spread runs. */
export function writePaperInputs(path: string, runDirs: string[], note?: string, spreadDirs: string[] = []): void {
  const rel = (d: string) =>
    relative(dirname(resolve(path)), resolve(d))
      .split('\\')
      .join('/');
  const doc: PaperInputs = { ...(note ? { note } : {}), runs: runDirs.map(rel), ...(spreadDirs.length ? { spread: spreadDirs.map(rel) } : {}) };
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
}
