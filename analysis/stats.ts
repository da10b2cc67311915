// Summary statistics over repetitions. Medians, not means: a single slow
// repetition (a scheduler hiccup) should not move the headline number.

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  return { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length };
}

/** Group items by a string key, keeping first-seen order. */
export function groupBy<T>(items: T[], key: (t: T) => string): Map<string, T[]> {
  const out = new Map<string, T[]>();
  for (const t of items) {
    const k = key(t);
    const g = out.get(k);
    if (g) g.push(t);
    else out.set(k, [t]);
  }
  return out;
}

/** Values of a numeric field, dropping rows where it was not measured. */
export function values<T>(items: T[], get: (t: T) => number | null): number[] {
  return items.map(get).filter((v): v is number => v !== null && Number.isFinite(v));
}
