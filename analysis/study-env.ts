// The env.json of a `faultlab study` folder (harness/study.ts writes it beside
// the matrix folders <out>/<matrix>/): the command, the commit, when the study
// started and finished, and how long each matrix took. The paper's inputs are
// the matrix folders, so a study's env.json is the one in a run's parent folder.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

export interface StudyEnv {
  study: true;
  commit?: string;
  quick?: boolean;
  allow_dirty?: boolean;
  dirty?: boolean;
  started?: string;
  finished?: string | null;
  complete?: boolean;
  interrupted?: boolean;
  /** Seconds over every invocation (a resumed study adds up). */
  seconds?: number;
  seconds_per_matrix?: Record<string, number>;
  failed_cells?: number;
  /** When the study was resumed, one time stamp per resumption. */
  resumed?: string[];
  matrices?: { name: string; matrix?: string; cells?: number; paper?: boolean; repeat?: number }[];
  /** `faultlab` arguments of the last invocation. */
  argv?: string[];
  kernel?: string;
  cpus?: number;
  cpu_model?: string;
}

/** A study folder's env.json, or why the folder holds none: the one reader of
 * it (the paper, `study`'s resume and its --spread-with check). */
export function readStudyEnv(dir: string): { env: StudyEnv } | { why: 'none' | 'not-json' | 'not-study'; detail?: string } {
  const file = join(dir, 'env.json');
  if (!existsSync(file)) return { why: 'none' };
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return { why: 'not-json', detail: (e as Error).message };
  }
  const study = typeof doc === 'object' && doc !== null && !Array.isArray(doc) && (doc as { study?: unknown }).study === true;
  return study ? { env: doc as StudyEnv } : { why: 'not-study' };
}

/** dirname(runDir)/env.json when it is a study's (`"study": true`), else null; a study env.json that is not JSON is an error naming it. */
export function loadStudyEnv(runDir: string): StudyEnv | null {
  const r = readStudyEnv(dirname(resolve(runDir)));
  if ('env' in r) return r.env;
  if (r.why === 'not-json') throw new Error(`${join(dirname(resolve(runDir)), 'env.json')}: not valid JSON (${r.detail})`);
  return null;
}
