// The thesis's published values (analysis/thesis-reference.json), typed.
// Read with fs, not a JSON import: Node 20 warns on JSON modules, and the
// compiled dist/analysis/ has no copy of the file, so look beside the source too.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { methodLabel } from './runs.js';

export interface CompareWith {
  scenario: string;
  strategy: string;
  source: string;
  rtt_ms: number;
  column: 'first_access_ns' | 'throughput_mibps';
}

export interface ThesisValue {
  id: string;
  measure: string;
  method: string;
  rtt_ms?: number;
  /** The claim holds from rtt_ms up to rtt_ms_to ("below 1 MB/s from 6 ms"). */
  rtt_ms_to?: number;
  /** "upper": the thesis only says the value is below; "lower": above. */
  bound?: 'upper' | 'lower';
  value: number;
  unit: 'ns' | 'MiB/s';
  value_as_published: number;
  unit_as_published: string;
  alternative_readings_mibps?: Record<string, number>;
  approximate: boolean;
  source: string;
  note?: string;
  machine: string;
  figures: string[];
  compare_with?: CompareWith;
}

export interface ThesisReference {
  study: string;
  summary_used: string;
  machine: { cpu: string; memory: string; os: string; kernel: string; short: string };
  latency_emulation: string;
  unit_conversion: string;
  values: ThesisValue[];
}

const candidates = [
  new URL('./thesis-reference.json', import.meta.url),
  new URL('../../analysis/thesis-reference.json', import.meta.url), // from dist/analysis/
];

export function loadThesisReference(): ThesisReference {
  for (const u of candidates) {
    const p = fileURLToPath(u);
    if (existsSync(p)) return JSON.parse(readFileSync(p, 'utf8')) as ThesisReference;
  }
  throw new Error('analysis/thesis-reference.json not found beside the analysis modules');
}

/** Thesis values drawn on a given figure. */
export function thesisValuesFor(ref: ThesisReference, figure: string): ThesisValue[] {
  return ref.values.filter((v) => v.figures.includes(figure));
}

/** Legend entry of a thesis overlay point. */
export function thesisSeries(v: ThesisValue): string {
  const bound = v.bound === 'upper' ? ' (upper bound)' : v.bound === 'lower' ? ' (lower bound)' : '';
  return `thesis: ${v.method}${bound}`;
}

/** The x category of this study that a thesis value sits on (e.g. userfaultfd at 0 ms -> "uffd (local)"). */
export function thesisCategory(v: ThesisValue): string {
  return v.compare_with ? methodLabel(v.compare_with) : `thesis: ${v.method}`;
}
