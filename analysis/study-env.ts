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

/** dirname(runDir)/env.json when it is a study's (`"study": true`), else null; a study env.json that is not JSON is an error naming it. */
export function loadStudyEnv(runDir: string): StudyEnv | null {
  const file = join(dirname(resolve(runDir)), 'env.json');
  if (!existsSync(file)) return null;
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return null;
  return (doc as { study?: unknown }).study === true ? (doc as StudyEnv) : null;
}
