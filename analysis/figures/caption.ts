// A figure's caption says n: how many repetitions stand behind each plotted
// median. Figures carry it in their data (a `reps` field on every plotted
// median), and anything the caption must add for this data set (a fallback,
// a value that could not be drawn) in the spec's `usermeta.note`;
// `usermeta.intervals: false` for a figure that draws no bootstrap interval.
import type { TopLevelSpec } from 'vega-lite';
import { BOOTSTRAP_RESAMPLES, nRange } from '../stats.js';

/** Every `reps` number in the spec's inline data, at any depth (layers, facets). */
export function repsIn(spec: unknown): number[] {
  const out: number[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.data && typeof o.data === 'object' && Array.isArray((o.data as { values?: unknown }).values))
        for (const d of (o.data as { values: Record<string, unknown>[] }).values) if (typeof d?.reps === 'number') out.push(d.reps);
      for (const [k, x] of Object.entries(o)) if (k !== 'data') walk(x);
    }
  };
  walk(spec);
  return out;
}

/** The static caption, then n (and the bootstrap's resamples when intervals are drawn), then the spec's note. */
export function captionWithN(caption: string, spec: TopLevelSpec): string {
  const reps = repsIn(spec);
  const meta = (spec as { usermeta?: { note?: unknown; intervals?: unknown } }).usermeta;
  const note = meta?.note;
  const parts = [caption.trim()];
  if (reps.length)
    parts.push(
      `${nRange(reps)} repetition${Math.max(...reps) > 1 ? 's' : ''} per plotted median` +
        (meta?.intervals === false ? '.' : `; 95 % intervals from ${BOOTSTRAP_RESAMPLES} bootstrap resamples of the median (fixed seed).`),
    );
  if (typeof note === 'string' && note) parts.push(note);
  return parts.join(' ');
}
