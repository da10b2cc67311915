// "Thesis vs this study": each thesis value that has a counterpart here, next
// to our median of the same measure (with its bootstrap interval) and the
// ratio ours/thesis. Across machines that ratio says little (absolute times
// move 2-4x between days on one machine); ratios.ts gives the same-machine
// ratios that do transfer, and the paper shows them beside these.
import { methodLabel, okRows, type RunRow } from './runs.js';
import { oneParameterSet } from './slice.js';
import { bootstrapMedian, values, type Interval } from './stats.js';
import type { ThesisReference, ThesisValue } from './thesis.js';

export interface ComparisonRow {
  id: string;
  measure: string;
  /** The thesis's method name (userfaultfd) and ours (uffd (local)). */
  method: string;
  ourMethod: string;
  rttMs: number;
  thesisValue: number;
  unit: 'ns' | 'MiB/s';
  /** What the thesis wrote, e.g. "about 58 us (fig.)" or "< 1 MB/s". */
  thesisAsPublished: string;
  ourMedian: number | null;
  /** Our median with its bootstrap interval (stats.ts); null when we have no value. */
  ours: Interval | null;
  reps: number;
  /** ours / thesis; null when we have no value. */
  ratio: number | null;
  /**
   * For a bound: true when our whole interval lies on the side the thesis
   * claims, false when it lies wholly on the other, 'undecided' when it
   * straddles the bound; null for a value that is not a bound.
   */
  boundHolds: boolean | 'undecided' | null;
}

function published(v: ThesisValue): string {
  const b = v.bound === 'upper' ? '< ' : v.bound === 'lower' ? '> ' : '';
  return `${b}${v.approximate && !b ? 'about ' : ''}${v.value_as_published} ${v.unit_as_published}${v.approximate ? ' (fig.)' : ''}`;
}

export function thesisVsStudy(rows: RunRow[], ref: ThesisReference): ComparisonRow[] {
  const ok = okRows(rows);
  return ref.values
    .filter((v) => v.compare_with)
    .map((v) => {
      const c = v.compare_with!;
      const same = ok.filter((r) => r.scenario === c.scenario && r.strategy === c.strategy && r.source === c.source);
      // The same parameter set as the figure that shows this value (see slice.ts).
      const sel =
        c.rtt_ms === 0
          ? oneParameterSet(
              same.filter((r) => r.rttMs === 0),
              'largest-region',
            )
          : oneParameterSet(same, 'widest-rtt-sweep').filter((r) => r.rttMs === c.rtt_ms);
      const xs = values(sel, (r) => (c.column === 'first_access_ns' ? r.firstAccessNs : r.throughputMibps));
      const iv = xs.length ? bootstrapMedian(xs) : null;
      const ours = iv?.value ?? null;
      const beyond = (x: number) => (v.bound === 'upper' ? x < v.value : x > v.value);
      const boundHolds = iv === null || !v.bound ? null : beyond(iv.lo) && beyond(iv.hi) ? true : !beyond(iv.lo) && !beyond(iv.hi) ? false : 'undecided';
      return {
        id: v.id,
        measure: `${v.measure}, ${c.rtt_ms} ms RTT`,
        method: v.method,
        ourMethod: methodLabel(c),
        rttMs: c.rtt_ms,
        thesisValue: v.value,
        unit: v.unit,
        thesisAsPublished: published(v),
        ourMedian: ours,
        ours: iv,
        reps: xs.length,
        ratio: ours === null ? null : ours / v.value,
        boundHolds,
      };
    });
}
