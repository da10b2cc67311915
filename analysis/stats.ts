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
  /** The median's 95 % bootstrap interval (bootstrapMedian): what figures draw as band or error bar. */
  lo: number;
  hi: number;
  n: number;
}

export function spread(xs: number[]): Spread {
  const iv = bootstrapMedian(xs);
  return { median: iv.value, min: Math.min(...xs), max: Math.max(...xs), lo: iv.lo, hi: iv.hi, n: xs.length };
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

// Percentile bootstrap. Every call starts its own generator from the same
// fixed seed, so an interval depends only on its data (not on which table
// asked first) and the paper regenerates byte for byte.

/** Resamples per interval; the paper's captions and tables quote it. */
export const BOOTSTRAP_RESAMPLES = 2000;
export const BOOTSTRAP_SEED = 0x5eed2026;
export const CONFIDENCE = 0.95;

export interface Interval {
  /** The point estimate (median of the data, or the ratio of the two medians). */
  value: number;
  lo: number;
  hi: number;
  /** Repetitions behind it; for a ratio, those of the numerator and the denominator. */
  n: number;
  nDen?: number;
}

export interface BootstrapOptions {
  resamples?: number;
  seed?: number;
  level?: number;
}

/** mulberry32: a small, fast 32-bit generator, deterministic for a seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resampleMedian(xs: number[], next: () => number): number {
  const r = new Array<number>(xs.length);
  for (let i = 0; i < xs.length; i++) r[i] = xs[Math.floor(next() * xs.length)];
  return median(r);
}

/** The central `level` share of bootstrap statistics (percentile method). */
function percentiles(stats: number[], level: number): [number, number] {
  const s = stats.filter(Number.isFinite).sort((a, b) => a - b);
  if (s.length === 0) return [NaN, NaN];
  const tail = (1 - level) / 2;
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.round(p * (s.length - 1))))];
  return [at(tail), at(1 - tail)];
}

/** Median with a percentile-bootstrap interval; n = 1 gives lo = hi = the value (no spread to resample). */
export function bootstrapMedian(xs: number[], o: BootstrapOptions = {}): Interval {
  const value = median(xs);
  if (xs.length <= 1) return { value, lo: value, hi: value, n: xs.length };
  const next = rng(o.seed ?? BOOTSTRAP_SEED);
  const stats = Array.from({ length: o.resamples ?? BOOTSTRAP_RESAMPLES }, () => resampleMedian(xs, next));
  const [lo, hi] = percentiles(stats, o.level ?? CONFIDENCE);
  return { value, lo, hi, n: xs.length };
}

/**
 * median(num) / median(den) with a bootstrap interval: each resample draws
 * both sides independently (they are separate cells of one run).
 */
export function bootstrapRatio(num: number[], den: number[], o: BootstrapOptions = {}): Interval {
  const value = median(num) / median(den);
  const base = { n: num.length, nDen: den.length };
  if (num.length === 0 || den.length === 0) return { value: NaN, lo: NaN, hi: NaN, ...base };
  if (num.length === 1 && den.length === 1) return { value, lo: value, hi: value, ...base };
  const next = rng(o.seed ?? BOOTSTRAP_SEED);
  const stats = Array.from({ length: o.resamples ?? BOOTSTRAP_RESAMPLES }, () => resampleMedian(num, next) / resampleMedian(den, next));
  const [lo, hi] = percentiles(stats, o.level ?? CONFIDENCE);
  return { value, lo, hi, ...base };
}

/** The n of a set of intervals as a reader wants it: "n = 5" or "n = 2–5". */
export function nRange(ns: number[]): string {
  if (ns.length === 0) return 'n = 0';
  const lo = Math.min(...ns);
  const hi = Math.max(...ns);
  return lo === hi ? `n = ${lo}` : `n = ${lo}–${hi}`;
}

/** One sentence on how the intervals were made, for captions and table notes. */
export const BOOTSTRAP_NOTE = `95 % percentile-bootstrap interval of the median (${BOOTSTRAP_RESAMPLES} resamples, fixed seed)`;
