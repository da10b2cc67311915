// Every figure, in the order the paper shows them.
import { okRows, type RunRow } from '../runs.js';
import { loadThesisReference, type ThesisReference } from '../thesis.js';
import { faultCdf } from './fault-cdf.js';
import { faultDecomposition } from './fault-decomposition.js';
import { firstChunk0ms } from './first-chunk-0ms.js';
import { firstChunkVsRtt } from './first-chunk-vs-rtt.js';
import { throughput0ms } from './throughput-0ms.js';
import { throughputVsRtt } from './throughput-vs-rtt.js';
import type { Figure, FigureDef } from './types.js';

export const FIGURES: FigureDef[] = [
  firstChunk0ms,
  firstChunkVsRtt,
  throughput0ms,
  throughputVsRtt,
  faultCdf,
  faultDecomposition,
];

export interface BuildOptions {
  thesis?: ThesisReference;
  runId?: string;
}

/**
 * Build every figure the rows have data for. Failed rows are dropped here, so
 * a figure never shows a value from a run that did not complete and verify.
 */
export function buildFigures(rows: RunRow[], opts: BuildOptions = {}): { figures: Figure[]; skipped: string[] } {
  const input = { rows: okRows(rows), thesis: opts.thesis ?? loadThesisReference(), runId: opts.runId };
  const figures: Figure[] = [];
  const skipped: string[] = [];
  for (const def of FIGURES) {
    const spec = def.build(input);
    if (spec) figures.push({ name: def.name, caption: def.caption, spec });
    else skipped.push(def.name);
  }
  return { figures, skipped };
}
