// What a figure module provides: a name (file stem), a caption for the paper,
// and a builder from rows to a Vega-Lite spec (null when the run has no data for it).
import type { TopLevelSpec } from 'vega-lite';
import type { RunRow } from '../runs.js';
import type { ThesisReference } from '../thesis.js';

export interface FigureInput {
  /** status=ok rows only. */
  rows: RunRow[];
  thesis: ThesisReference;
  runId?: string;
}

export interface FigureDef {
  name: string;
  caption: string;
  build(input: FigureInput): TopLevelSpec | null;
}

export interface Figure {
  name: string;
  caption: string;
  spec: TopLevelSpec;
  /** Run ids whose rows the figure draws (first = where `chart`/`paper` write its files); empty when rows carry no run id. */
  runs?: string[];
}
