// What every generated section of the paper is given (analysis/paper.ts builds
// it; paper-sections.ts and push-section.ts read it).
import type { RunEnv } from './env.js';
import type { RunRow } from './runs.js';
import type { SpreadRun } from './spread.js';
import type { StudyEnv } from './study-env.js';
import type { ThesisReference } from './thesis.js';

export interface SectionInput {
  rows: RunRow[];
  env: RunEnv;
  thesis: ThesisReference;
  runId: string;
  /** Every run the rows came from, the first being the one `env` describes (several with `paper --in A --in B`); `study`: the env.json of the study folder the run lies in (study-env.ts), null for a run made on its own. */
  runs?: { id: string; env: RunEnv | null; study?: StudyEnv | null }[];
  /** Figures drawn, with their paths relative to the paper. */
  figures: { name: string; caption: string; png: string; svg: string; vl: string }[];
  skippedFigures: string[];
  /** Runs for the run-to-run spread section (analysis/spread.ts), of one matrix or several; absent: taken from `runs`. */
  spreadRuns?: SpreadRun[];
}
