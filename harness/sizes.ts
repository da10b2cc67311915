// Byte sizes as users write them: 4096, 4KiB, 64MiB, 1GiB, 1TiB (also K/M/G/T).
import { UsageError } from './errors.js';

const UNITS: Record<string, number> = { '': 1, K: 1024, KiB: 1024, M: 1024 ** 2, MiB: 1024 ** 2, G: 1024 ** 3, GiB: 1024 ** 3, T: 1024 ** 4, TiB: 1024 ** 4 };

export function parseSize(text: string | number, what = 'size'): number {
  const m = /^(\d+)\s*([KMGT](?:iB)?)?$/.exec(String(text).trim());
  if (!m) throw new UsageError(`bad ${what} '${text}': use bytes or a unit, e.g. 4096, 4KiB, 64MiB, 1GiB, 1TiB`);
  const n = Number(m[1]) * UNITS[m[2] ?? ''];
  if (!Number.isSafeInteger(n)) throw new UsageError(`${what} '${text}' is too large`);
  return n;
}

export function formatSize(n: number): string {
  for (const [unit, f] of [
    ['TiB', 1024 ** 4],
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const) {
    if (n >= f && n % f === 0) return `${n / f}${unit}`;
  }
  return `${n}B`;
}
