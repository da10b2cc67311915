// Number and table formatting for the paper's generated sections.

/** A duration in ns with a unit a reader can take in at a glance (767 ns, 58.0 µs, 40.0 ms). */
export function formatNs(ns: number | null): string {
  if (ns === null || !Number.isFinite(ns)) return '–';
  if (ns < 1e3) return `${sig(ns)} ns`;
  if (ns < 1e6) return `${sig(ns / 1e3)} µs`;
  if (ns < 1e9) return `${sig(ns / 1e6)} ms`;
  return `${sig(ns / 1e9)} s`;
}

export function formatMibps(v: number | null): string {
  return v === null || !Number.isFinite(v) ? '–' : `${sig(v)} MiB/s`;
}

export function formatValue(v: number | null, unit: 'ns' | 'MiB/s'): string {
  return unit === 'ns' ? formatNs(v) : formatMibps(v);
}

export function formatRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return '–';
  return r >= 100 || r < 0.01 ? `${r.toExponential(1)}×` : `${sig(r)}×`;
}

/** Three significant digits, without exponent notation for everyday magnitudes. */
export function sig(x: number): string {
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(3)).toString();
}

/** A GitHub-flavoured markdown table; pipes and newlines in cells are escaped. */
export function mdTable(header: string[], rows: (string | number)[][]): string {
  const cell = (c: string | number) => String(c).replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
  const line = (cs: (string | number)[]) => `| ${cs.map(cell).join(' | ')} |`;
  return [line(header), `| ${header.map(() => '---').join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** "2.41 ms [2.38, 2.45]": a median with its interval, each part formatted alike; no brackets when n < 2. */
export function formatInterval(iv: { value: number; lo: number; hi: number; n: number } | null, fmt: (v: number | null) => string): string {
  if (iv === null || !Number.isFinite(iv.value)) return '–';
  if (iv.n < 2 || iv.lo === iv.hi) return fmt(iv.value);
  return `${fmt(iv.value)} [${fmt(iv.lo)}, ${fmt(iv.hi)}]`;
}
