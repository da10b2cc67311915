// analysis/ for the push matrix (write-track, migrate): figures, the column
// checks and a paper drawn from two runs at once. Runs on hand-made fixtures
// (test/fixtures/push-runs.csv and the thesis fixture runs.csv): test data,
// not measurements.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from 'vega-lite';
import { parseCsv } from '../analysis/csv.js';
import { buildFigures, FIGURES } from '../analysis/figures/index.js';
import { findMarkers } from '../analysis/markers.js';
import { generatePaper } from '../analysis/paper.js';
import { PUSH_REQUIRED_COLUMNS } from '../analysis/push.js';
import { specToSvg } from '../analysis/render.js';
import { loadRunDirs } from '../analysis/run-dirs.js';
import { loadRuns, MissingColumnError, rowsFromCsv } from '../analysis/runs.js';
import { loadThesisReference } from '../analysis/thesis.js';
import { collectingLogger } from '../analysis/vega-logger.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
const PAPER = join(import.meta.dirname, '..', 'paper', 'paper.md');
const PUSH_FIGURES = ['write-slowdown', 'push-per-interval', 'migration'];
const THESIS_FIGURES = ['first-chunk-0ms', 'first-chunk-vs-rtt', 'throughput-0ms', 'throughput-vs-rtt', 'fault-cdf', 'fault-decomposition'];
const thesis = loadThesisReference();
const pushRows = loadRuns(join(FIXTURES, 'push-runs.csv'));
const thesisRows = loadRuns(join(FIXTURES, 'runs.csv'));
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'faultlab-analysis-push-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** CSV text of a fixture with one column removed. */
function withoutColumn(file: string, column: string): string {
  const records = parseCsv(readFileSync(join(FIXTURES, file), 'utf8'));
  const k = records[0].indexOf(column);
  expect(k, column).toBeGreaterThanOrEqual(0);
  const q = (v: string) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
  return (
    records
      .map((r) =>
        r
          .filter((_, i) => i !== k)
          .map(q)
          .join(','),
      )
      .join('\n') + '\n'
  );
}

/** All the strings of a spec's title subtitle(s). */
const subtitle = (spec: unknown) => JSON.stringify((spec as { title: { subtitle: unknown } }).title.subtitle);

describe('push rows', () => {
  it('parses the push columns: dirty chunks per interval, amplification, migration times', () => {
    const wt = pushRows.find((r) => r.scenario === 'write-track' && r.strategy === 'uffd-wp' && r.status === 'ok')!;
    expect(wt.push).not.toBeNull();
    expect(wt.push!.dirtyChunks).toEqual([13, 13, 13]);
    expect(wt.push!.writeAmplification).toBe(1);
    expect(wt.push!.trackerExact).toBe('true');
    const mg = pushRows.find((r) => r.scenario === 'migrate')!;
    expect(mg.push!.migrationNs).toBeGreaterThan(mg.push!.downtimeNs!);
    expect(mg.push!.tracker).toBe('uffd-wp');
    // Rows of other scenarios carry no push fields.
    expect(thesisRows.every((r) => r.push === null)).toBe(true);
  });

  it('a thesis-only CSV needs no push column; a CSV with push rows needs them, naming the missing one', () => {
    const thesisHeader = parseCsv(readFileSync(join(FIXTURES, 'runs.csv'), 'utf8'))[0];
    expect(thesisHeader).not.toContain('tracker');
    expect(thesisHeader).not.toContain('write_amplification');
    expect(thesisRows.length).toBeGreaterThan(0);
    for (const column of ['write_amplification', 'downtime_ns', 'dirty_chunks']) {
      expect(PUSH_REQUIRED_COLUMNS).toContain(column);
      expect(() => rowsFromCsv(withoutColumn('push-runs.csv', column), 'push-runs.csv')).toThrow(MissingColumnError);
      expect(() => rowsFromCsv(withoutColumn('push-runs.csv', column), 'push-runs.csv')).toThrow(`"${column}"`);
    }
  });
});

describe('push figures', () => {
  const { figures, skipped } = buildFigures(pushRows, { thesis, runId: 'push-fixture' });

  it('the push fixture draws exactly the three push figures and skips the thesis ones', () => {
    expect(figures.map((f) => f.name)).toEqual(PUSH_FIGURES);
    expect(skipped).toEqual(expect.arrayContaining(THESIS_FIGURES));
    for (const n of PUSH_FIGURES) expect(skipped).not.toContain(n);
  });

  it.each(PUSH_FIGURES)('%s compiles with vega-lite and renders with vega without warnings', async (name) => {
    const fig = figures.find((f) => f.name === name)!;
    const logger = collectingLogger();
    compile(fig.spec, { logger });
    expect(logger.warnings).toEqual([]);
    const { svg, warnings } = await specToSvg(fig.spec);
    expect(warnings).toEqual([]);
    expect(svg).toContain('font-family="DejaVu Sans"');
  });

  it('axes carry units and legends the CSV names; failed rows are not drawn', () => {
    const json = (name: string) => JSON.stringify(figures.find((f) => f.name === name)!.spec);
    expect(json('write-slowdown')).toContain('write slowdown (×, log scale)');
    for (const t of ['uffd-wp', 'uffd-wp-async', 'mprotect', 'none']) expect(json('write-slowdown')).toContain(`"${t}"`);
    expect(json('write-slowdown')).toContain('"seq"');
    expect(json('push-per-interval')).toContain('MiB pushed / interval');
    expect(json('push-per-interval')).toContain('dirty 4 KiB chunks / interval');
    expect(json('push-per-interval')).toContain('write amplification (×)');
    expect(json('migration')).toContain('time (ms, log scale)');
    expect(json('migration')).toContain('emulated round-trip time (ms)');
    expect(json('migration')).toContain('uffd (remote)');
    expect(json('migration')).toContain('sigsegv (remote)');
    // The failed mprotect repetition ran at 2 ms RTT; no write-track row at 2 ms may appear.
    expect(json('write-slowdown')).not.toContain('"rtts":"2"');
    expect(json('write-slowdown')).not.toContain('0, 2');
  });

  it('the thesis fixture alone still yields exactly the six thesis figures', () => {
    const t = buildFigures(thesisRows, { thesis, runId: 'fixture' });
    expect(t.figures.map((f) => f.name)).toEqual(THESIS_FIGURES);
    expect(t.skipped).toEqual(expect.arrayContaining(PUSH_FIGURES));
    expect(t.skipped).toEqual(FIGURES.map((f) => f.name).filter((n) => !THESIS_FIGURES.includes(n)));
  });

  it('rows of two runs: each figure names the run its rows came from', () => {
    const both = [...thesisRows.map((r) => ({ ...r, runId: 'fixture' })), ...pushRows.map((r) => ({ ...r, runId: 'push-fixture' }))];
    const b = buildFigures(both, { thesis });
    expect(b.figures.map((f) => f.name)).toEqual([...THESIS_FIGURES, ...PUSH_FIGURES]);
    for (const f of b.figures) {
      const own = PUSH_FIGURES.includes(f.name) ? 'push-fixture' : 'fixture';
      expect(f.runs, f.name).toEqual([own]);
      expect(subtitle(f.spec), f.name).toContain(`data: results/${own},`);
    }
  });
});

describe('paper from two runs', () => {
  it('fills the push marker, takes the set-up table from the first run and puts each figure beside its own run', async () => {
    const paperDir = join(tmp, 'paper');
    const thesisDir = join(tmp, 'results', 'fixture');
    const pushDir = join(tmp, 'results', 'push-fixture');
    for (const d of [paperDir, thesisDir, pushDir]) mkdirSync(d, { recursive: true });
    copyFileSync(PAPER, join(paperDir, 'paper.md'));
    copyFileSync(join(FIXTURES, 'runs.csv'), join(thesisDir, 'runs.csv'));
    copyFileSync(join(FIXTURES, 'env.json'), join(thesisDir, 'env.json'));
    copyFileSync(join(FIXTURES, 'push-runs.csv'), join(pushDir, 'runs.csv'));
    writeFileSync(
      join(pushDir, 'env.json'),
      JSON.stringify({ run_id: 'push-fixture', matrix: 'push', complete: true, kernel: '6.1.0-fixture', commit: 'fixture1' }),
    );
    expect(findMarkers(readFileSync(join(paperDir, 'paper.md'), 'utf8')).map((m) => m.name)).toContain('push');

    const r = await generatePaper({ inDir: [thesisDir, pushDir], paperPath: join(paperDir, 'paper.md') });
    expect(r.warnings).toEqual([]);
    expect(r.figures.map((f) => f.name)).toEqual([...THESIS_FIGURES, ...PUSH_FIGURES]);
    const md = readFileSync(r.paperPath, 'utf8');
    const region = (name: string) => {
      const m = findMarkers(md).find((x) => x.name === name)!;
      return md.slice(m.start, m.end);
    };

    const push = region('push');
    expect(push).toContain('results/fixture + results/push-fixture');
    expect(push).toMatch(/\| uffd-wp \| seq \| 1 MiB, remote \| 0\.05 × 3 \| 0 \| 2 \|/);
    expect(push).toMatch(/\| uffd-wp-async \| hot \|/);
    expect(push).toMatch(/\| none \| seq \|.*\| 0\/2 \| 2\/2 \|/); // none reports every chunk: never exact
    expect(push).toMatch(/\| uffd \(remote\) \| 2 \| 256 KiB \| uffd-wp, hot \| 2 \|/);
    expect(push).toMatch(/\| sigsegv \(remote\) \| 0 \|/);
    // Medians with their bootstrap intervals, n named in the header.
    expect(push).toContain('| n | write p50: tracked / untracked | slowdown (p50s) [95 % CI] |');
    expect(push).toContain('migration total: median [95 % CI] (min–max)');
    expect(push).toMatch(/\| uffd \(remote\) \| 2 \| 256 KiB \| uffd-wp, hot \| 2 \| [\d.]+ ms \[[\d.]+ ms, [\d.]+ ms\] \(/);
    expect(push).toContain('[Figure 7, write-slowdown](figures/write-slowdown.png)');
    expect(push).toContain('[Figure 9, migration](figures/migration.png)');
    expect(push).toContain('1 push repetition(s) failed');
    expect(push).toContain('No rows for: soft-dirty');

    // Set-up: the first run's env, then a line for the second.
    const setup = region('setup');
    expect(setup).toContain('| run id | fixture |');
    expect(setup).toContain('| combined with push-fixture | matrix push,');
    expect(setup).toContain('differs: commit fixture1');
    // Push rows stay out of the read-medians table; the failed push row is listed.
    expect(region('results-summary')).not.toContain('write-track');
    expect(region('failures')).toContain('"timeout", after 5000 ms');

    // Figures: thesis ones beside the thesis run, push ones beside the push run; both copied to the paper.
    expect(existsSync(join(thesisDir, 'figures', 'fault-cdf.png'))).toBe(true);
    expect(existsSync(join(pushDir, 'figures', 'write-slowdown.png'))).toBe(true);
    expect(existsSync(join(thesisDir, 'figures', 'write-slowdown.png'))).toBe(false);
    for (const n of PUSH_FIGURES) expect(existsSync(join(paperDir, 'figures', `${n}.png`))).toBe(true);
    const vl = JSON.parse(readFileSync(join(pushDir, 'figures', 'migration.vl.json'), 'utf8'));
    expect(subtitle(vl)).toContain('data: results/push-fixture,');

    const html = readFileSync(r.htmlPath, 'utf8');
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(THESIS_FIGURES.length + PUSH_FIGURES.length);
  }, 90_000);

  it('refuses the same run given twice', () => {
    const d = join(tmp, 'results', 'twice');
    mkdirSync(d, { recursive: true });
    copyFileSync(join(FIXTURES, 'push-runs.csv'), join(d, 'runs.csv'));
    expect(() => loadRunDirs([d, d])).toThrow(/same run \(twice\)/);
  });
});
