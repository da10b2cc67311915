// Scenario matrices: JSON files (scenarios/<name>.json or any path), validated
// field by field, expanded into cells. A group lists values per key; a key given
// as a list is an axis, and a group expands to the cartesian product.
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { CPUS, PATTERNS, SCENARIOS, SOURCES, STRATEGIES, TRACKERS, CellParams, DEFAULTS, usesSource } from './cell.js';
import { parseSize } from './sizes.js';
import { BEYOND_AXES, BEYOND_FILTERS, beyondFromCombo, beyondKey } from './beyond.js';

export type CellKind = 'cell' | 'floors' | 'transport';

export interface MatrixCell {
  id: string;
  group: string;
  kind: CellKind;
  params: CellParams;
  /** floors: 4 KiB pages per floor; transport: requests per repetition. */
  count?: number;
}

export interface Matrix {
  name: string;
  description: string;
  cells: MatrixCell[];
}

// Keys a group may have, with the check each value must pass.
type Check = (v: unknown) => string | null;
const isIn = (list: readonly string[]): Check => (v) => (list.includes(v as string) ? null : `must be one of ${list.join(', ')}`);
const isSize: Check = (v) => {
  try {
    parseSize(v as string);
    return null;
  } catch {
    return 'must be a size such as 4096, 4KiB or 64MiB';
  }
};
const isNum = (min: number, max: number): Check => (v) =>
  typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? null : `must be a number from ${min} to ${max}`;
const isInt = (min: number, max: number): Check => (v) => (Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `must be a whole number from ${min} to ${max}`);

const AXES: Record<string, Check> = {
  strategy: isIn(STRATEGIES),
  scenario: isIn(SCENARIOS),
  source: isIn(SOURCES),
  rtt: isNum(0, 10_000),
  region: isSize,
  chunk: isSize,
  cpus: isIn(CPUS),
  handler_threads: isInt(1, 16),
  seed: isInt(0, 2 ** 31),
  pattern: isIn(PATTERNS),
  write_fraction: (v) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'must be a number in (0, 1]'),
  intervals: isInt(1, 100_000),
  tracker: isIn(TRACKERS),
  ...BEYOND_AXES,
};
const SCALARS: Record<string, Check> = {
  name: (v) => (typeof v === 'string' && /^[a-z0-9-]+$/.test(v) ? null : 'must be a name of a-z, 0-9 and -'),
  kind: isIn(['cell', 'floors', 'transport']),
  repeat: isInt(1, 100_000),
  count: isInt(1, 10_000_000),
  fetch_timeout: isInt(1, 3_600_000),
  note: (v) => (typeof v === 'string' ? null : 'must be text'),
};

function fail(path: string, field: string, why: string): never {
  throw new UsageError(`${path}: ${field} ${why}`);
}

const scenariosDir = fileURLToPath(new URL(existsSync(fileURLToPath(new URL('../scenarios', import.meta.url))) ? '../scenarios' : '../../scenarios', import.meta.url));

/** A matrix by name (scenarios/<name>.json) or by path. */
export function resolveMatrixPath(nameOrPath: string): string {
  if (nameOrPath.endsWith('.json') || nameOrPath.includes('/')) {
    if (!existsSync(nameOrPath)) throw new UsageError(`matrix file ${nameOrPath} does not exist`);
    return nameOrPath;
  }
  const p = `${scenariosDir}/${nameOrPath}.json`;
  if (!existsSync(p)) throw new UsageError(`unknown matrix '${nameOrPath}' (no ${p}); give a name from scenarios/ or a path to a .json file`);
  return p;
}

export function loadMatrix(nameOrPath: string): Matrix {
  const path = resolveMatrixPath(nameOrPath);
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UsageError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseMatrix(doc, path);
}

export function parseMatrix(doc: unknown, path: string): Matrix {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) fail(path, 'the file', 'must hold a JSON object');
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!['name', 'description', 'groups'].includes(k)) fail(path, k, 'is not a known field (name, description, groups)');
  if (typeof d.name !== 'string' || !d.name) fail(path, 'name', 'must be a non-empty string');
  if (!Array.isArray(d.groups) || d.groups.length === 0) fail(path, 'groups', 'must be a non-empty list');
  const cells: MatrixCell[] = [];
  const seen = new Set<string>();
  d.groups.forEach((g: unknown, gi: number) => {
    const at = `groups[${gi}]`;
    if (typeof g !== 'object' || g === null || Array.isArray(g)) fail(path, at, 'must be an object');
    const grp = g as Record<string, unknown>;
    for (const [k, v] of Object.entries(grp)) {
      if (AXES[k]) {
        const vals = Array.isArray(v) ? v : [v];
        if (vals.length === 0) fail(path, `${at}.${k}`, 'must not be an empty list');
        vals.forEach((x, i) => {
          const why = AXES[k](x);
          if (why) fail(path, Array.isArray(v) ? `${at}.${k}[${i}]` : `${at}.${k}`, `${why} (got ${JSON.stringify(x)})`);
        });
      } else if (SCALARS[k]) {
        const why = SCALARS[k](v);
        if (why) fail(path, `${at}.${k}`, `${why} (got ${JSON.stringify(v)})`);
      } else {
        fail(path, `${at}.${k}`, `is not a known field (${[...Object.keys(AXES), ...Object.keys(SCALARS)].join(', ')})`);
      }
    }
    if (typeof grp.name !== 'string') fail(path, `${at}.name`, 'is required');
    const kind = (grp.kind as CellKind) ?? 'cell';
    if (kind === 'cell' && (grp.strategy === undefined || grp.scenario === undefined)) fail(path, at, 'needs strategy and scenario');
    for (const combo of product(grp)) {
      const params: CellParams = {
        ...DEFAULTS,
        strategy: (combo.strategy as CellParams['strategy']) ?? 'uffd',
        scenario: (combo.scenario as CellParams['scenario']) ?? 'read-seq',
        source: (combo.source as CellParams['source']) ?? DEFAULTS.source,
        rttMs: (combo.rtt as number) ?? 0,
        regionBytes: combo.region !== undefined ? parseSize(combo.region as string) : DEFAULTS.regionBytes,
        chunkBytes: combo.chunk !== undefined ? parseSize(combo.chunk as string) : DEFAULTS.chunkBytes,
        cpus: (combo.cpus as CellParams['cpus']) ?? DEFAULTS.cpus,
        handlerThreads: (combo.handler_threads as number) ?? DEFAULTS.handlerThreads,
        seed: (combo.seed as number) ?? DEFAULTS.seed,
        repeat: (grp.repeat as number) ?? 1,
        fetchTimeoutMs: (grp.fetch_timeout as number) ?? DEFAULTS.fetchTimeoutMs,
        pattern: combo.pattern as CellParams['pattern'],
        writeFraction: combo.write_fraction as number | undefined,
        intervals: combo.intervals as number | undefined,
        tracker: combo.tracker as CellParams['tracker'],
        ...beyondFromCombo(combo),
      };
      // memory and disk have no source: one cell, not one per source.
      if (kind === 'cell' && !usesSource(params.strategy)) params.source = 'local';
      if (kind === 'cell' && params.rttMs > 0 && params.source !== 'remote') continue;
      const cell: MatrixCell = { id: '', group: grp.name as string, kind, params, count: grp.count as number | undefined };
      cell.id = cellId(cell);
      if (seen.has(cell.id)) continue;
      seen.add(cell.id);
      cells.push(cell);
    }
  });
  return { name: d.name, description: typeof d.description === 'string' ? d.description : '', cells };
}

function product(grp: Record<string, unknown>): Record<string, unknown>[] {
  let out: Record<string, unknown>[] = [{}];
  for (const k of Object.keys(AXES)) {
    if (grp[k] === undefined) continue;
    const vals = Array.isArray(grp[k]) ? (grp[k] as unknown[]) : [grp[k]];
    out = out.flatMap((o) => vals.map((v) => ({ ...o, [k]: v })));
  }
  return out;
}

/** Stable id from what the cell measures (not from its position in the file). */
export function cellId(c: MatrixCell): string {
  const p = c.params;
  const push = p.pattern ?? p.writeFraction ?? p.intervals ?? p.tracker; // only push cells add keys: older ids stay stable
  const key = [c.kind, p.strategy, p.scenario, p.source, p.rttMs, p.regionBytes, p.chunkBytes, p.cpus, p.handlerThreads, p.seed, p.repeat, c.count ?? '', ...(push !== undefined ? [p.pattern, p.writeFraction, p.intervals, p.tracker] : []), ...beyondKey(p)].join('/');
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

/** --filter key=value: keep cells whose parameter equals the value (sizes parsed). */
export function applyFilters(cells: MatrixCell[], filters: string[]): MatrixCell[] {
  let out = cells;
  for (const f of filters) {
    const m = /^([a-z_]+)=(.+)$/.exec(f);
    if (!m) throw new UsageError(`bad --filter '${f}': use key=value, e.g. strategy=uffd`);
    const [, key, value] = m;
    const get: Record<string, (c: MatrixCell) => string | number> = {
      strategy: (c) => c.params.strategy,
      scenario: (c) => c.params.scenario,
      source: (c) => c.params.source,
      rtt: (c) => c.params.rttMs,
      region: (c) => c.params.regionBytes,
      chunk: (c) => c.params.chunkBytes,
      cpus: (c) => c.params.cpus,
      handler_threads: (c) => c.params.handlerThreads,
      group: (c) => c.group,
      pattern: (c) => c.params.pattern ?? '',
      tracker: (c) => c.params.tracker ?? '',
      ...Object.fromEntries(Object.entries(BEYOND_FILTERS).map(([k, f]) => [k, (c: MatrixCell) => f(c.params)])),
      kind: (c) => c.kind,
    };
    if (!get[key]) throw new UsageError(`bad --filter key '${key}' (known: ${Object.keys(get).join(', ')})`);
    const want = key === 'region' || key === 'chunk' ? parseSize(value) : ['rtt', 'handler_threads', 'depth', 'app_threads', 'touch_fraction'].includes(key) ? Number(value) : value;
    out = out.filter((c) => get[key](c) === want);
  }
  return out;
}
