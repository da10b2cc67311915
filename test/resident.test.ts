// Issue 19 through the CLI: --resident-limit for uffd and sigsegv with both
// eviction policies, over a region 4x the limit, from faultlab's NBD server.
// write-random writes half the chunks, which are evicted (written back),
// fetched again and checked, and the server's contents are checked at the end.
import { describe, expect, it } from 'vitest';
import { compile } from 'vega-lite';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildFigures } from '../analysis/figures/index.js';
import { rowsFromCsv } from '../analysis/runs.js';
import { COLUMNS } from '../harness/columns.js';
import { cellId, loadMatrix } from '../harness/matrix.js';
import { faultlab, lastJson } from './helpers.js';

const LIMIT = 1 << 20;

/** write-random from faultlab's NBD server through a resident limit (args: region, limit and the rest). */
const writeThroughLimit = (strategy: string, args: string[]) =>
  faultlab(['bench', '--strategy', strategy, '--scenario', 'write-random', '--source', 'remote', ...args, '--json']);

describe('a region 4x the resident limit verifies, written chunks included', () => {
  for (const strategy of ['uffd', 'sigsegv'])
    for (const evict of ['fifo', 'clock'])
      it(`${strategy} ${evict} write-random`, () => {
        const r = writeThroughLimit(strategy, ['--region', '4MiB', '--resident-limit', '1MiB', '--evict', evict]);
        expect(r.status, r.stderr).toBe(0);
        const j = lastJson(r.stdout);
        expect(j.verified).toBe(true);
        expect(j.source_verified).toBe(true);
        expect(j.resident_limit).toBe(LIMIT);
        expect(j.evict).toBe(evict);
        expect(Number(j.max_resident_bytes)).toBeLessThanOrEqual(LIMIT);
        expect(Number(j.evictions)).toBeGreaterThanOrEqual((4 * LIMIT - LIMIT) / 4096);
        expect(Number(j.writebacks)).toBeGreaterThan(0);
        expect(Number(j.refetches)).toBeGreaterThan(0);
      });

  it('read-zipf through the limit keeps it and verifies (both strategies)', () => {
    for (const strategy of ['uffd', 'sigsegv']) {
      const r = faultlab([
        'bench',
        '--strategy',
        strategy,
        '--scenario',
        'read-zipf',
        '--region',
        '4MiB',
        '--resident-limit',
        '1MiB',
        '--evict',
        'clock',
        '--json',
      ]);
      expect(r.status, r.stderr).toBe(0);
      const j = lastJson(r.stdout);
      expect(j.verified).toBe(true);
      expect(Number(j.max_resident_bytes)).toBeLessThanOrEqual(LIMIT);
      expect(j.writebacks).toBe(0);
    }
  });
});

describe('prefetch respects the limit', () => {
  // A chunk the engine holds back as a trigger cannot be evicted; under random
  // writes its fault may never come, so they must not pile up (they did for
  // sigsegv, and the run failed: no chunk could be evicted).
  for (const strategy of ['uffd', 'sigsegv'])
    for (const prefetch of ['ahead:4', 'background'])
      it(`${strategy} ${prefetch} write-random over 4x the limit verifies, the server's contents too`, () => {
        const limit = 32 << 20;
        const r = writeThroughLimit(strategy, ['--region', '128MiB', '--chunk', '64KiB', '--resident-limit', '32MiB', '--prefetch', prefetch]);
        expect(r.status, r.stderr).toBe(0);
        const j = lastJson(r.stdout);
        expect(j.verified).toBe(true);
        expect(j.source_verified).toBe(true);
        expect(Number(j.prefetched)).toBeGreaterThan(0);
        expect(Number(j.max_resident_bytes)).toBeLessThanOrEqual(limit);
        expect(Number(j.writebacks)).toBeGreaterThan(0);
      });
});

describe('bad input is refused with one line and exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['--evict without a limit', ['--strategy', 'uffd', '--evict', 'clock'], /--evict needs --resident-limit/],
    ['a baseline', ['--strategy', 'memory', '--resident-limit', '1MiB'], /--resident-limit is for uffd and sigsegv/],
    ['not whole chunks', ['--strategy', 'uffd', '--chunk', '8KiB', '--resident-limit', '1028KiB'], /not a multiple of the chunk/],
    ['too small for what is in flight', ['--strategy', 'sigsegv', '--resident-limit', '16KiB'], /raise it to at least/],
    ['an unknown policy', ['--strategy', 'uffd', '--resident-limit', '1MiB', '--evict', 'lru'], /evict/],
    ['write-random on a baseline', ['--strategy', 'eager', '--scenario', 'write-random'], /write-random is for uffd and sigsegv/],
  ];
  for (const [name, args, re] of cases)
    it(name, () => {
      const r = faultlab(['bench', ...args]);
      expect(r.status).toBe(2);
      if (name !== 'an unknown policy') expect(r.stderr.trim().split('\n')).toHaveLength(1); // yargs lists the choices on a second line
      expect(r.stderr).toMatch(re);
    });
});

describe('the matrix, the CSV and the figure', () => {
  it('cell ids of cells without a limit do not change; a limit changes them', () => {
    const m = loadMatrix('resident');
    const nolimit = m.cells.find((c) => c.group === 'resident-1gib-nolimit')!;
    const limited = { ...nolimit, params: { ...nolimit.params, residentLimit: 1 << 30 } };
    expect(cellId(limited)).not.toBe(cellId(nolimit));
    const withoutKeys = { ...nolimit, params: { ...nolimit.params } };
    delete (withoutKeys.params as Record<string, unknown>).residentLimit;
    expect(cellId(withoutKeys)).toBe(cellId(nolimit));
    // The columns come after every earlier one, so older CSVs keep their layout.
    const at = COLUMNS.indexOf('resident_limit');
    expect(at).toBeGreaterThan(COLUMNS.indexOf('app_minor_faults'));
    expect(COLUMNS.slice(at, at + 8)).toEqual([
      'resident_limit',
      'evict',
      'evictions',
      'refetches',
      'writebacks',
      'max_resident_bytes',
      'reref_faults',
      'source_verified',
    ]);
  });

  it('a small resident matrix runs, its rows carry the columns, and the figure draws them', () => {
    const dir = mkdtempSync(join(tmpdir(), 'faultlab-resident-'));
    try {
      const matrix = join(dir, 'small.json');
      writeFileSync(
        matrix,
        JSON.stringify({
          name: 'small-resident',
          description: 'test',
          groups: [
            {
              name: 'resident-hit-rate',
              scenario: 'read-random',
              strategy: 'sigsegv',
              source: 'remote',
              region: '4MiB',
              chunk: '16KiB',
              resident_limit: ['1MiB', '2MiB'],
              evict: ['fifo', 'clock'],
              repeat: 1,
            },
          ],
        }),
      );
      const r = faultlab(['run', '--matrix', matrix, '--out', dir, '--run-id', 'r'], {}, 300_000);
      expect(r.status, r.stderr).toBe(0);
      const csv = readFileSync(join(dir, 'r', 'runs.csv'), 'utf8');
      const rows = rowsFromCsv(csv);
      expect(rows).toHaveLength(4);
      for (const row of rows) {
        expect(row.verified).toBe('true');
        expect(row.designSpace!.residentLimit).toBeGreaterThan(0);
        expect(row.designSpace!.maxResidentBytes!).toBeLessThanOrEqual(row.designSpace!.residentLimit!);
        expect(row.designSpace!.evictions!).toBeGreaterThan(0);
      }
      const { figures } = buildFigures(rows);
      const fig = figures.find((f) => f.name === 'resident-limit');
      expect(fig).toBeDefined();
      expect(() => compile(fig!.spec)).not.toThrow();
      // Rows with a limit are never drawn as the thesis's set-up.
      expect(figures.map((f) => f.name)).not.toContain('throughput-0ms');
      expect(readdirSync(join(dir, 'r'))).toContain('env.json');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
