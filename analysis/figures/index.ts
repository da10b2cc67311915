// Every figure, in the order the paper shows them.
import { okRows, type RunRow } from '../runs.js';
import { RUNS_SEPARATOR } from '../spec-common.js';
import { loadThesisReference, type ThesisReference } from '../thesis.js';
import { faultCdf } from './fault-cdf.js';
import { faultDecomposition } from './fault-decomposition.js';
import { firstChunk0ms } from './first-chunk-0ms.js';
import { firstChunkVsRtt } from './first-chunk-vs-rtt.js';
import { migration } from './migration.js';
import { pushPerInterval } from './push-per-interval.js';
import { throughput0ms } from './throughput-0ms.js';
import { throughputVsRtt } from './throughput-vs-rtt.js';
import type { Figure, FigureDef } from './types.js';
import { captionWithN } from './caption.js';
import { writeSlowdown } from './write-slowdown.js';
import { isThesisLike, splitDesignSpaceRuns } from '../design-space.js';
import { chunkSweep } from './chunk-sweep.js';
import { lazyEagerCrossover } from './lazy-eager-crossover.js';
import { prefetchVsRtt } from './prefetch-vs-rtt.js';
import { threadScaling } from './thread-scaling.js';
import { hugePages } from './huge-pages.js';
import { latencyMethodRuns, latencyMethods } from './latency-methods.js';
import { handlerProcess } from './handler-process.js';
import { residentLimit } from './resident-limit.js';

export const FIGURES: FigureDef[] = [
  firstChunk0ms,
  firstChunkVsRtt,
  throughput0ms,
  throughputVsRtt,
  faultCdf,
  faultDecomposition,
  // push (matrix `push`): skipped for runs without write-track/migrate rows
  writeSlowdown,
  pushPerInterval,
  migration,
  // the design space beyond the thesis (matrix `design-space`): skipped for runs without their rows
  prefetchVsRtt,
  lazyEagerCrossover,
  threadScaling,
  chunkSweep,
  hugePages,
  // two latency emulations (matrix `latency-methods`): skipped for runs without nbdkit-delay rows
  latencyMethods,
  handlerProcess,
  // regions larger than memory (matrix `resident`): skipped for runs without resident-limit rows
  residentLimit,
];

/** Figures that read prefetch / multi-threaded / VMA-span rows; every other figure sees the thesis's set-up only. */
const DESIGN_SPACE_FIGURES: FigureDef[] = [prefetchVsRtt, lazyEagerCrossover, threadScaling, chunkSweep, hugePages, handlerProcess, residentLimit];
const rowsFor = (def: FigureDef, rows: RunRow[]) => (DESIGN_SPACE_FIGURES.includes(def) ? rows : rows.filter(isThesisLike));
/** The runs' rows a figure may draw: a design-space figure, the design-space runs' (splitDesignSpaceRuns); every other, the other runs'. */
const partFor = (def: FigureDef, part: { thesis: RunRow[]; designSpace: RunRow[] }) => (DESIGN_SPACE_FIGURES.includes(def) ? part.designSpace : part.thesis);

export interface BuildOptions {
  thesis?: ThesisReference;
  /** The run's id when the rows come from one run (default: their run_id). */
  runId?: string;
}

/**
 * Build every figure the rows have data for. Failed rows are dropped here, so
 * a figure never shows a value from a run that did not complete and verify.
 * Rows from several runs: a figure names (and `runs` lists) the runs whose rows
 * alone give it data, in the order the runs first appear. Design-space runs
 * combined with others: see splitDesignSpaceRuns.
 */
export function buildFigures(allRows: RunRow[], opts: BuildOptions = {}): { figures: Figure[]; skipped: string[] } {
  // A run that compares latency emulations feeds its own figure only: its
  // server-delay rows are that figure's baseline, not more thesis cells.
  const methodRuns = latencyMethodRuns(allRows);
  const methodRows = allRows.filter((r) => methodRuns.has(r.runId));
  const part = splitDesignSpaceRuns(allRows.filter((r) => !methodRuns.has(r.runId)));
  const thesis = opts.thesis ?? loadThesisReference();
  const figures: Figure[] = [];
  const skipped: string[] = [];
  for (const def of FIGURES) {
    const ok = okRows(def === latencyMethods ? methodRows : partFor(def, part));
    const runIds = [...new Set(ok.map((r) => r.runId).filter(Boolean))];
    let runs = runIds;
    if (runIds.length > 1) {
      const alone = runIds.filter(
        (id) =>
          def.build({
            rows: rowsFor(
              def,
              ok.filter((r) => r.runId === id),
            ),
            thesis,
            runId: id,
          }) !== null,
      );
      if (alone.length) runs = alone; // else only the combination has data: name every run
    }
    const runId = runIds.length > 1 ? runs.join(RUNS_SEPARATOR) : (opts.runId ?? runIds[0]);
    const spec = def.build({ rows: rowsFor(def, ok), thesis, runId });
    if (spec) figures.push({ name: def.name, caption: captionWithN(def.caption, spec), spec, runs });
    else skipped.push(def.name);
  }
  return { figures, skipped };
}
