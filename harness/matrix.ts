// Scenario matrices: JSON files (scenarios/<name>.json or any path), validated
// field by field, expanded into cells. A group lists values per key; a key given
// as a list is an axis, and a group expands to the cartesian product.
import { readFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { PARAM_LIST, usesSource, type CellParams, type IdPart } from './params.js';
import { isIn, isInt, type Check } from './param-kinds.js';

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

// Keys a group may have, with the check each value must pass: the cell
// parameters' (params.ts; a list is an axis) and the group's own.
const MATRIX_PARAMS = PARAM_LIST.filter(([, d]) => d.matrix);
const checkOf = ([, d]: (typeof MATRIX_PARAMS)[number]): [string, Check] => [d.matrix!.key, d.matrix!.check ?? d.kind.matrixCheck!];
const AXES: Record<string, Check> = Object.fromEntries(MATRIX_PARAMS.filter(([, d]) => !d.matrix!.perGroup).map(checkOf));
const SCALARS: Record<string, Check> = {
  name: (v) => (typeof v === 'string' && /^[a-z0-9-]+$/.test(v) ? null : 'must be a name of a-z, 0-9 and -'),
  kind: isIn(['cell', 'floors', 'transport']),
  ...Object.fromEntries(MATRIX_PARAMS.filter(([, d]) => d.matrix!.perGroup).map(checkOf)),
  count: isInt(1, 10_000_000),
  note: (v) => (typeof v === 'string' ? null : 'must be text'),
};

/** Old matrix names, as older commands and runs (results/<run-id>/env.json) give them. */
const RENAMED: Record<string, string> = { beyond: 'design-space' };

function fail(path: string, field: string, why: string): never {
  throw new UsageError(`${path}: ${field} ${why}`);
}

const scenariosDir = fileURLToPath(
  new URL(existsSync(fileURLToPath(new URL('../scenarios', import.meta.url))) ? '../scenarios' : '../../scenarios', import.meta.url),
);

/** A matrix by name (scenarios/<name>.json) or by path. */
export function resolveMatrixPath(nameOrPath: string): string {
  if (nameOrPath.endsWith('.json') || nameOrPath.includes('/')) {
    if (!existsSync(nameOrPath)) throw new UsageError(`matrix file ${nameOrPath} does not exist`);
    return nameOrPath;
  }
  const p = `${scenariosDir}/${RENAMED[nameOrPath] ?? nameOrPath}.json`;
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
      // floors and transport cells have no strategy: uffd stands in.
      const params = { strategy: 'uffd', ...paramsOf(combo, grp) } as CellParams;
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

/** A combination's cell parameters: its axes' values, the group's own, else the defaults. */
function paramsOf(combo: Record<string, unknown>, grp: Record<string, unknown>): Partial<CellParams> {
  const out: Record<string, unknown> = {};
  for (const [name, d] of MATRIX_PARAMS) {
    const raw = d.matrix!.perGroup ? grp[d.matrix!.key] : combo[d.matrix!.key];
    const v = raw !== undefined ? d.kind.fromMatrix(raw) : d.default;
    if (v !== undefined) out[name] = v;
  }
  return out;
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

const partOf = (part: IdPart) => PARAM_LIST.filter(([, d]) => d.id === part);
/** The id hashes the design-space part behind this word: the matrix's name
 * before it was design-space. Changing it would change every such cell's id,
 * and --resume of a run made before would run its cells again. */
const DESIGN_SPACE_ID_TAG = 'beyond';
const MIGRATE_ID_TAG = 'streamed';

/** Stable id from what the cell measures (not from its position in the file):
 * the cell's own part, its count, then the push and design-space parts, each
 * only when the cell sets one of its parameters, so older ids stay stable. */
export function cellId(c: MatrixCell): string {
  const values = (part: IdPart) => partOf(part).map(([name]) => c.params[name]);
  const ifSet = (vs: unknown[], tag: unknown[] = []) => (vs.some((v) => v !== undefined) ? [...tag, ...vs] : []);
  // Migrate cells always hash their part: pre-copy pushes pipelined and the
  // pull by prefetch changed what they measure, so their ids changed with it.
  const migrate = c.params.scenario === 'migrate' ? [MIGRATE_ID_TAG, ...values('migrate')] : ifSet(values('migrate'));
  const key = [
    c.kind,
    ...values('cell'),
    c.count ?? '',
    ...ifSet(values('push')),
    ...migrate,
    ...ifSet(values('design-space'), [DESIGN_SPACE_ID_TAG]),
    ...ifSet(values('latency'), ['latency']),
    ...ifSet(values('handler'), ['handler']),
    ...ifSet(values('resident'), ['resident']),
  ].join('/');
  return createHash('sha256').update(key).digest('hex').slice(0, 12);
}

type Getter = (c: MatrixCell) => string | number;
/** --filter getters of a part's parameters, by matrix key. */
function filtersOf(part: IdPart): Record<string, Getter> {
  return Object.fromEntries(
    partOf(part)
      .filter(([, d]) => d.filter)
      .map(([name, d]): [string, Getter] => {
        const f = d.filter!;
        const get: Getter =
          typeof f === 'function' ? (c) => f(c.params) : (c) => (c.params[name] as string | number | undefined) ?? (f === true ? '' : f.unset);
        return [d.matrix!.key, get];
      }),
  );
}
const FILTERS: Record<string, Getter> = {
  ...filtersOf('cell'),
  group: (c) => c.group,
  ...filtersOf('push'),
  ...filtersOf('migrate'),
  ...filtersOf('design-space'),
  ...filtersOf('latency'),
  ...filtersOf('handler'),
  ...filtersOf('resident'),
  kind: (c) => c.kind,
};
/** A filter's value as its getter returns it (sizes parsed, numbers as numbers). */
const filterValue = (key: string, text: string) => MATRIX_PARAMS.find(([, d]) => d.matrix!.key === key)?.[1].kind.fromFilter(text) ?? text;

/** --filter key=value: keep cells whose parameter equals the value (sizes parsed). */
export function applyFilters(cells: MatrixCell[], filters: string[]): MatrixCell[] {
  let out = cells;
  for (const f of filters) {
    const m = /^([a-z_]+)=(.+)$/.exec(f);
    if (!m) throw new UsageError(`bad --filter '${f}': use key=value, e.g. strategy=uffd`);
    const [, key, value] = m;
    const get = FILTERS[key];
    if (!get) throw new UsageError(`bad --filter key '${key}' (known: ${Object.keys(FILTERS).join(', ')})`);
    const want = filterValue(key, value);
    out = out.filter((c) => get(c) === want);
  }
  return out;
}
