// analysis/: CSV -> figures (Vega-Lite, SVG, PNG) -> paper. Runs on the
// hand-made fixture in test/fixtures (test data, not measurements).
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compile } from 'vega-lite';
import { thesisVsStudy } from '../analysis/comparison.js';
import { parseCsv, parseCsvTable } from '../analysis/csv.js';
import { buildFigures, FIGURES } from '../analysis/figures/index.js';
import { findMarkers, fillMarkers } from '../analysis/markers.js';
import { markdownToHtml } from '../analysis/markdown.js';
import { formatMibps } from '../analysis/format.js';
import { generatePaper, spreadRuns } from '../analysis/paper.js';
import { cellSpreads } from '../analysis/spread.js';
import { faultlab } from './helpers.js';
import { failuresSection, floorsSection, resultsSummarySection, thesisVsStudySection } from '../analysis/paper-sections.js';
import type { SectionInput } from '../analysis/section-input.js';
import { renderFigures, specToSvg, svgToPng, PNG_SCALE } from '../analysis/render.js';
import { loadRuns, MissingColumnError, REQUIRED_COLUMNS, rowsFromCsv } from '../analysis/runs.js';
import { loadThesisReference } from '../analysis/thesis.js';
import { collectingLogger } from '../analysis/vega-logger.js';
import { isThesisLike, policyLabel } from '../analysis/design-space.js';

const FIXTURES = join(import.meta.dirname, 'fixtures');
/** The figures a thesis-matrix run draws; the others (push, ...) are skipped for it. */
const THESIS_FIGURES = ['first-chunk-0ms', 'first-chunk-vs-rtt', 'throughput-0ms', 'throughput-vs-rtt', 'fault-cdf', 'fault-decomposition'];
const PAPER = join(import.meta.dirname, '..', 'paper', 'paper.md');
const rows = loadRuns(join(FIXTURES, 'runs.csv'));
const thesis = loadThesisReference();
let tmp: string;

beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'faultlab-analysis-'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** The fixture's CSV text with one column removed. */
function withoutColumn(column: string): string {
  const records = parseCsv(readFileSync(join(FIXTURES, 'runs.csv'), 'utf8'));
  const k = records[0].indexOf(column);
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

/** Width and height from a PNG's IHDR chunk. */
const pngSize = (png: Buffer) => ({ width: png.readUInt32BE(16), height: png.readUInt32BE(20) });

describe('csv', () => {
  it('parses quotes, escaped quotes, commas and newlines inside quotes, CRLF', () => {
    const text = 'a,b,c\r\n1,"x, ""y""",3\r\n4,"two\nlines",\n';
    expect(parseCsv(text)).toEqual([
      ['a', 'b', 'c'],
      ['1', 'x, "y"', '3'],
      ['4', 'two\nlines', ''],
    ]);
    expect(parseCsvTable(text).rows[1]).toEqual({ a: '4', b: 'two\nlines', c: '' });
  });

  it('reads the fixture, including the failed row whose message spans two lines', () => {
    const failed = rows.filter((r) => r.status === 'failed');
    expect(failed).toHaveLength(1);
    expect(failed[0].message).toContain('"ECONNRESET", after 3 chunks,\nworker');
    expect(rows.find((r) => r.faultNsCdf)?.faultNsCdf).toHaveLength(21);
  });

  it('fails naming the column when a required column is missing', () => {
    for (const column of ['fault_ns_cdf', 'rtt_ms', 'status']) {
      expect(() => rowsFromCsv(withoutColumn(column), 'runs.csv')).toThrow(MissingColumnError);
      expect(() => rowsFromCsv(withoutColumn(column), 'runs.csv')).toThrow(`"${column}"`);
    }
    expect(REQUIRED_COLUMNS).toContain('throughput_mibps');
  });
});

describe('figures', () => {
  const { figures, skipped } = buildFigures(rows, { thesis, runId: 'fixture' });

  it('the fixture has data for every thesis figure (the push figures need a push run: test/analysis-push.test.ts)', () => {
    expect(figures.map((f) => f.name)).toEqual(THESIS_FIGURES);
    expect(skipped).toEqual(FIGURES.map((f) => f.name).filter((n) => !THESIS_FIGURES.includes(n)));
  });

  it.each(figures.map((f) => [f.name, f] as const))('%s compiles with vega-lite and renders with vega without warnings', async (_, fig) => {
    const logger = collectingLogger();
    compile(fig.spec, { logger });
    expect(logger.warnings).toEqual([]);
    const { svg, warnings } = await specToSvg(fig.spec);
    expect(warnings).toEqual([]);
    expect(svg).toContain('<svg');
    expect(svg).toContain('font-family="DejaVu Sans"');
  });

  it('thesis overlays appear in the figures that have a thesis counterpart', () => {
    const json = (name: string) => JSON.stringify(figures.find((f) => f.name === name)!.spec);
    expect(json('first-chunk-0ms')).toContain('thesis: userfaultfd');
    expect(json('throughput-0ms')).toContain('thesis: memory');
    expect(json('first-chunk-vs-rtt')).toContain('thesis: userfaultfd');
    expect(json('throughput-vs-rtt')).toContain('thesis: userfaultfd (upper bound)');
    // Failed rows never reach a figure.
    expect(json('throughput-0ms')).not.toContain('read-random');
  });

  it('writes .vl.json, .svg and .png for every figure', async () => {
    const out = join(tmp, 'figures');
    const rendered = await renderFigures(figures, out);
    for (const r of rendered) {
      expect(r.warnings).toEqual([]);
      for (const f of Object.values(r.files)) {
        expect(existsSync(f)).toBe(true);
        expect(statSync(f).size).toBeGreaterThan(100);
      }
      expect(pngSize(readFileSync(r.files.png))).toEqual({ width: r.width, height: r.height });
    }
  }, 60_000);

  it('the PNG has text drawn with the bundled font, at twice the SVG size', async () => {
    const { svg, width, height } = await specToSvg(figures[0].spec);
    const withFont = svgToPng(svg);
    const noFont = svgToPng(svg, { withFont: false });
    expect(withFont.width).toBe(Math.round(width * PNG_SCALE));
    expect(withFont.height).toBe(Math.round(height * PNG_SCALE));
    expect(pngSize(withFont.png)).toEqual({ width: withFont.width, height: withFont.height });
    expect(noFont.width).toBe(withFont.width);
    // Without a font resvg draws no glyphs: the difference is the text.
    let differing = 0;
    for (let i = 0; i < withFont.pixels.length; i += 4) if (withFont.pixels.readUInt32BE(i) !== noFont.pixels.readUInt32BE(i)) differing++;
    expect(differing).toBeGreaterThan(5_000);
  }, 30_000);
});

/**
 * Made-up rows of a `design-space` run (test data): a prefetch sweep (so the run is
 * a design-space run), a thesis-like baseline row with a value no fixture row has
 * (4242.4242 MiB/s, uffd remote at 10 ms, where the fixture has rows too) and
 * a failed VMA-limit row.
 */
function designSpaceRunRows() {
  const out: Record<string, string | number>[] = [];
  const base = {
    run_id: 'design-space-x',
    status: 'ok',
    repetition: 0,
    cpus: 'same',
    strategy: 'uffd',
    scenario: 'read-seq',
    source: 'remote',
    region_bytes: 128 << 20,
    first_access_ns: 1e6,
    fault_ns_p50: 1e5,
    fault_ns_p99: 2e5,
    fault_ns_cdf: '',
    total_ns: 1e8,
    handler_threads: 1,
    app_threads: 1,
    message: '',
  };
  for (const prefetch of ['none', 'ahead:64'])
    for (const rtt of [0, 10, 25])
      out.push({ ...base, rtt_ms: rtt, chunk_bytes: 1 << 20, prefetch, throughput_mibps: prefetch === 'none' ? 100 / (1 + rtt) : 500 });
  out.push({ ...base, region_bytes: 262144, rtt_ms: 10, chunk_bytes: 4096, prefetch: 'none', throughput_mibps: 4242.4242 });
  out.push({
    ...base,
    status: 'failed',
    strategy: 'sigsegv',
    scenario: 'read-random',
    source: 'local',
    rtt_ms: 0,
    chunk_bytes: 4096,
    prefetch: 'none',
    throughput_mibps: '',
    message: 'vm.max_map_count reached',
  });
  const cols = [...new Set(out.flatMap((r) => Object.keys(r)))];
  return rowsFromCsv([cols.join(','), ...out.map((r) => cols.map((c) => r[c] ?? '').join(','))].join('\n') + '\n');
}

describe('a design-space run combined with a thesis run', () => {
  const designSpace = designSpaceRunRows();
  const combined = [...rows, ...designSpace];
  const { figures } = buildFigures(combined, { thesis });
  const fig = (figs: typeof figures, name: string) => figs.find((f) => f.name === name);
  const input = (rs: typeof rows): SectionInput => ({ rows: rs, env: {}, thesis, runId: 'x', figures: [], skippedFigures: [] });

  it('thesis figures draw only the thesis run; a design-space run alone still draws its thesis-like rows', () => {
    const tv = fig(figures, 'throughput-vs-rtt')!;
    expect(tv.runs).toEqual(['fixture']);
    expect(JSON.stringify(tv.spec)).not.toContain('4242.4242');
    for (const f of figures.filter((f) => THESIS_FIGURES.includes(f.name))) expect(f.runs, f.name).toEqual(['fixture']);
    expect(JSON.stringify(fig(buildFigures(designSpace, { thesis }).figures, 'throughput-vs-rtt')!.spec)).toContain('4242.4242');
  });

  it('design-space figures are built from the design-space run only', () => {
    const pv = fig(figures, 'prefetch-vs-rtt');
    expect(pv, 'prefetch-vs-rtt is drawn').toBeDefined();
    expect(pv!.runs).toEqual(['design-space-x']);
    expect(JSON.stringify(pv!.spec)).toContain('ahead:64');
    expect(pv!.spec).toEqual(fig(buildFigures(designSpace, { thesis }).figures, 'prefetch-vs-rtt')!.spec);
    // Fed every row, the figure would take the fixture's 4 KiB RTT sweep in.
    const def = FIGURES.find((f) => f.name === 'prefetch-vs-rtt')!;
    const everything = def.build({ rows: combined.filter((r) => r.status === 'ok'), thesis, runId: 'design-space-x' });
    expect(everything).not.toEqual(pv!.spec);
  });

  it('thesis tables leave the design-space run out; failures name the run of each row', () => {
    for (const section of [resultsSummarySection, floorsSection, thesisVsStudySection])
      expect(section(input(combined)), section.name).toBe(section(input(rows)));
    expect(resultsSummarySection(input(designSpace))).toContain(formatMibps(4242.4242));
    const failures = failuresSection(input(combined));
    expect(failures).toContain('| run | scenario |');
    expect(failures).toMatch(/\| fixture \| read-random \| uffd \(remote\) \|/);
    expect(failures).toMatch(/\| design-space-x \| read-random \| sigsegv \(local\) \|.*vm\.max_map_count reached/);
    expect(failuresSection(input(rows))).not.toContain('| run |');
  });
});

describe('which rows are thesis-like', () => {
  it('uffd with UFFDIO_COPY is; with UFFDIO_CONTINUE or UFFDIO_MOVE it is a design-space row, labelled by its ioctl', () => {
    const row = (install: string) => {
      const r: Record<string, string | number> = {
        ...Object.fromEntries(REQUIRED_COLUMNS.map((c) => [c, 0])),
        run_id: 'r',
        status: 'ok',
        strategy: 'uffd',
        scenario: 'read-seq',
        source: 'remote',
        uffd_install: install,
        prefetch: 'none',
        app_threads: 1,
        message: '',
      };
      return rowsFromCsv(`${Object.keys(r).join(',')}\n${Object.values(r).join(',')}\n`)[0];
    };
    expect(isThesisLike(row('copy'))).toBe(true);
    expect(isThesisLike(row(''))).toBe(true);
    for (const install of ['continue', 'move']) {
      expect(isThesisLike(row(install)), install).toBe(false);
      expect(policyLabel(row(install))).toBe(`uffd ${install.toUpperCase()} (remote), no prefetch`);
    }
  });
});

describe('thesis reference and comparison', () => {
  it('every value states measure, method, value, unit, source and the thesis machine', () => {
    for (const v of thesis.values) {
      expect(v.measure && v.method && v.source && v.unit, v.id).toBeTruthy();
      expect(v.machine).toContain('i7-1280P');
      expect(Number.isFinite(v.value)).toBe(true);
      // Unit conversion: MB/s are the thesis's bytes/2^20/s, GB/s are 1000 of them.
      if (v.unit_as_published === 'MB/s') expect(v.value).toBe(v.value_as_published);
      if (v.unit_as_published === 'GB/s') expect(v.value).toBeCloseTo(v.value_as_published * 1000);
    }
  });

  it('compares each thesis value with our median of the same measure', () => {
    const cmp = thesisVsStudy(rows, thesis);
    const uffd = cmp.find((c) => c.id === 'first-chunk-0ms-userfaultfd')!;
    expect(uffd.ourMethod).toBe('uffd (local)');
    expect(uffd.ourMedian).not.toBeNull();
    expect(uffd.ratio).toBeCloseTo(uffd.ourMedian! / 58000);
    const bound = cmp.find((c) => c.id === 'throughput-6ms-userfaultfd-bound')!;
    expect(bound.boundHolds).toBe(true);
  });
});

describe('markers and markdown', () => {
  it('rejects a begin marker without its end, naming the marker', () => {
    const md = '# x\n<!-- faultlab:begin setup -->\nold\n';
    expect(() => findMarkers(md)).toThrow(/marker "setup" is missing <!-- faultlab:end setup -->/);
    expect(() => fillMarkers('<!-- faultlab:begin nope -->\n<!-- faultlab:end nope -->', { setup: 'x' })).toThrow(/unknown marker "nope"/);
  });

  it('replaces only the text between markers', () => {
    const md = 'before\n<!-- faultlab:begin a -->\nold\n<!-- faultlab:end a -->\nafter\n';
    expect(fillMarkers(md, { a: 'new' })).toBe('before\n<!-- faultlab:begin a -->\nnew\n<!-- faultlab:end a -->\nafter\n');
  });

  it('converts headings, tables, lists, code, images and links', () => {
    const html = markdownToHtml(
      '# T\n\ntext with `a|b` and [link](x.html)\n\n| h1 | h2 |\n| --- | --- |\n| 1 | 2 |\n\n- one\n- two\n\n```sh\nnpx x <id>\n```\n\n![alt](f.png)\n',
      { imageSrc: (s) => `data:${s}` },
    );
    expect(html).toContain('<h1 id="t">T</h1>');
    expect(html).toContain('<code>a|b</code>');
    expect(html).toContain('<a href="x.html">link</a>');
    expect(html).toContain('<td>1</td><td>2</td>');
    expect(html).toContain('<li>two</li>');
    expect(html).toContain('npx x &lt;id&gt;');
    expect(html).toContain('<img src="data:f.png" alt="alt">');
  });
});

describe('paper', () => {
  it('fills every marker of paper/paper.md from the fixture and writes a self-contained HTML', async () => {
    const paperDir = join(tmp, 'paper');
    const inDir = join(tmp, 'results', 'fixture');
    for (const d of [paperDir, inDir]) mkdirSync(d, { recursive: true });
    copyFileSync(PAPER, join(paperDir, 'paper.md'));
    copyFileSync(join(FIXTURES, 'runs.csv'), join(inDir, 'runs.csv'));
    copyFileSync(join(FIXTURES, 'env.json'), join(inDir, 'env.json'));

    const before = findMarkers(readFileSync(join(paperDir, 'paper.md'), 'utf8')).map((m) => m.name);
    const r = await generatePaper({ inDir, paperPath: join(paperDir, 'paper.md') });
    expect(r.warnings).toEqual([]);
    const md = readFileSync(r.paperPath, 'utf8');
    const regions = findMarkers(md);
    expect(regions.map((m) => m.name)).toEqual(before);
    expect(before).toEqual(expect.arrayContaining(['setup', 'figures', 'thesis-vs-study', 'results-summary', 'floors']));
    for (const m of regions) {
      const body = md
        .slice(m.start, m.end)
        .replace(/<!--[^]*?-->/g, '')
        .trim();
      expect(body.length, m.name).toBeGreaterThan(20);
    }
    expect(md).toContain('| run id | fixture |');
    expect(md).toContain('| first-chunk latency, 0 ms RTT | userfaultfd |');
    expect(md).toMatch(/\| read-seq \| uffd \(remote\) \| 40 \|/);
    expect(md).toMatch(/\| floor-uffd \| same \| 2 \|/);
    expect(md).toContain('chunk server died mid-run');
    expect(md).toContain('These results are not from one `faultlab study`: the run was made one by one');
    expect(md).toContain('](figures/first-chunk-0ms.png)');
    expect(existsSync(join(paperDir, 'figures', 'fault-decomposition.png'))).toBe(true);
    // The authors' prose outside the markers is untouched.
    const prose = (text: string) => text.replace(/<!-- faultlab:begin ([\w-]+) -->[^]*?<!-- faultlab:end \1 -->/g, '');
    expect(prose(md)).toBe(prose(readFileSync(PAPER, 'utf8')));

    const html = readFileSync(r.htmlPath, 'utf8');
    expect(html.match(/<img src="data:image\/png;base64,/g)).toHaveLength(r.figures.length);
    expect(r.figures.map((f) => f.name)).toEqual(THESIS_FIGURES);
    expect(html).not.toContain('<!-- faultlab:begin'); // markers are comments, dropped
    expect(html).toContain('<td>run id</td><td>fixture</td>');

    // Running again is stable: the regenerated sections replace, never accumulate.
    await generatePaper({ inDir, paperPath: join(paperDir, 'paper.md') });
    expect(readFileSync(r.paperPath, 'utf8')).toBe(md);
  }, 60_000);

  it("reads a study's env.json beside the matrix folder: the command, its commit and how long it took", async () => {
    const paperDir = join(tmp, 'study-paper');
    const inDir = join(tmp, 'study-x', 'thesis');
    for (const d of [paperDir, inDir]) mkdirSync(d, { recursive: true });
    copyFileSync(PAPER, join(paperDir, 'paper.md'));
    copyFileSync(join(FIXTURES, 'runs.csv'), join(inDir, 'runs.csv'));
    copyFileSync(join(FIXTURES, 'env.json'), join(inDir, 'env.json'));
    writeFileSync(
      join(tmp, 'study-x', 'env.json'),
      JSON.stringify({
        study: true,
        commit: 'feedc0ffee12',
        quick: false,
        started: '2026-12-03T06:00:00.000Z',
        finished: '2026-12-03T07:20:00.000Z',
        complete: true,
        seconds: 4790,
        seconds_per_matrix: { thesis: 4700 },
        matrices: [{ name: 'thesis', matrix: 'thesis', cells: 127, paper: true }],
        argv: ['study', '--out', 'results/study-x'],
      }),
    );
    const r = await generatePaper({ inDir, paperPath: join(paperDir, 'paper.md') });
    const md = readFileSync(r.paperPath, 'utf8');
    const section = md.slice(md.indexOf('<!-- faultlab:begin reproduce -->'), md.indexOf('<!-- faultlab:end reproduce -->'));
    expect(section).toContain('| command | `npx faultlab study --out results/study-x` |');
    expect(section).toContain('| commit | feedc0ffee12 |');
    expect(section).toContain('| time taken | 1 h 19 min of running; 1 h 20 min from start to finish |');
    expect(section).toContain('| thesis | thesis | 127 |');
    expect(section).not.toContain('not from one');
  }, 60_000);

  it('fails with the column name when runs.csv lacks a required column', async () => {
    const inDir = join(tmp, 'results', 'broken');
    mkdirSync(inDir, { recursive: true });
    writeFileSync(join(inDir, 'runs.csv'), withoutColumn('throughput_mibps'));
    copyFileSync(join(FIXTURES, 'env.json'), join(inDir, 'env.json'));
    const paper = join(tmp, 'broken-paper.md');
    copyFileSync(PAPER, paper);
    await expect(generatePaper({ inDir, paperPath: paper })).rejects.toThrow(/required column "throughput_mibps" is missing/);
  });
});

describe('run-to-run spread from two study folders', () => {
  /**
   * study-A/thesis and study-B/thesis from the fixture, both with run_id
   * "fixture" (in runs.csv and env.json): B's uffd (local) first chunk 3x
   * slower. study-A/push from the push fixture, a matrix given once.
   */
  function studies(root: string) {
    const records = parseCsv(readFileSync(join(FIXTURES, 'runs.csv'), 'utf8'));
    const col = (c: string) => records[0].indexOf(c);
    const q = (v: string) => (/[",\n\r]/.test(v) ? `"${v.replace(/"/g, '""')}"` : v);
    const slower = records.map((r, i) =>
      i > 0 && r[col('scenario')] === 'first-chunk' && r[col('strategy')] === 'uffd' && r[col('source')] === 'local' && r[col('first_access_ns')]
        ? r.map((v, k) => (k === col('first_access_ns') ? String(Number(v) * 3) : v))
        : r,
    );
    const dirs = { a: join(root, 'study-A', 'thesis'), b: join(root, 'study-B', 'thesis'), push: join(root, 'study-A', 'push') };
    for (const d of Object.values(dirs)) mkdirSync(d, { recursive: true });
    copyFileSync(join(FIXTURES, 'runs.csv'), join(dirs.a, 'runs.csv'));
    writeFileSync(join(dirs.b, 'runs.csv'), slower.map((r) => r.map(q).join(',')).join('\n') + '\n');
    for (const d of [dirs.a, dirs.b]) copyFileSync(join(FIXTURES, 'env.json'), join(d, 'env.json'));
    copyFileSync(join(FIXTURES, 'push-runs.csv'), join(dirs.push, 'runs.csv'));
    writeFileSync(
      join(dirs.push, 'env.json'),
      JSON.stringify({ ...JSON.parse(readFileSync(join(FIXTURES, 'env.json'), 'utf8')), run_id: 'push-fixture', matrix: 'push' }),
    );
    return dirs;
  }

  it('loads each folder on its own under a label of its last path parts, so two runs with one run_id never mix rows', () => {
    const dirs = studies(join(tmp, 'labels'));
    const runs = spreadRuns([dirs.a, dirs.b, dirs.push]);
    expect(runs.map((r) => [r.id, r.matrix])).toEqual([
      ['study-A/thesis', 'fixture'],
      ['study-B/thesis', 'fixture'],
      ['study-A/push', 'push'],
    ]);
    expect(runs[0].rows.length).toBe(rows.length);
    expect(runs[1].rows.length).toBe(rows.length);
    for (const r of runs) expect(new Set(r.rows.map((x) => x.runId))).toEqual(new Set([r.id]));
    const moved = cellSpreads(runs).filter((c) => c.maxOverMin > 1.0001);
    expect(moved.map((c) => `${c.matrix} ${c.scenario} ${c.method} ${c.rttMs}`)).toEqual(['fixture first-chunk uffd (local) 0']);
    expect(moved[0].maxOverMin).toBeCloseTo(3, 9);
    // Distinct run ids are kept as labels; one folder twice is refused.
    expect(spreadRuns([dirs.a, dirs.push]).map((r) => r.id)).toEqual(['fixture', 'push-fixture']);
    expect(() => spreadRuns([dirs.a, dirs.a])).toThrow(/given twice/);
  });

  it('faultlab paper --in --spread-in writes inputs.json with both lists; a bare faultlab paper rebuilds the same bytes', () => {
    const root = join(tmp, 'cli');
    const dirs = studies(root);
    const paper = join(root, 'p', 'paper.md');
    mkdirSync(dirname(paper), { recursive: true });
    copyFileSync(PAPER, paper);
    const r = faultlab(['paper', '--in', dirs.a, '--spread-in', dirs.a, dirs.b, dirs.push, '--paper', paper]);
    expect(r.status, r.stderr).toBe(0);
    const inputs = JSON.parse(readFileSync(join(root, 'p', 'inputs.json'), 'utf8'));
    expect(inputs.runs).toEqual(['../study-A/thesis']);
    expect(inputs.spread).toEqual(['../study-A/thesis', '../study-B/thesis', '../study-A/push']);
    expect(Object.keys(inputs)).toEqual(['note', 'runs', 'spread']);
    const md = readFileSync(paper, 'utf8');
    expect(md).toContain('| same-machine ratio (0 ms RTT) | study-A/thesis [95 % CI] (n) | study-B/thesis [95 % CI] (n) | largest / smallest |');
    expect(md).toMatch(/\| fixture \| first-chunk \| uffd \(local\) \| 0 \| .* \| 3× \|/);
    expect(md).toContain(`Not compared, one run only: matrix push (${dirs.push}).`);

    // From inputs.json alone, onto a fresh copy of the paper: the same bytes.
    copyFileSync(PAPER, paper);
    const bare = faultlab(['paper', '--paper', paper]);
    expect(bare.status, bare.stderr).toBe(0);
    expect(readFileSync(paper, 'utf8')).toBe(md);

    // --spread-in alone: the runs (and note) stay as inputs.json has them, the spread list is replaced.
    const spreadOnly = faultlab(['paper', '--spread-in', dirs.a, dirs.b, '--paper', paper]);
    expect(spreadOnly.status, spreadOnly.stderr).toBe(0);
    expect(JSON.parse(readFileSync(join(root, 'p', 'inputs.json'), 'utf8'))).toEqual({ ...inputs, spread: ['../study-A/thesis', '../study-B/thesis'] });
    expect(readFileSync(paper, 'utf8')).not.toContain('Not compared');
  }, 180_000);
});

describe('latency-methods figure', () => {
  // A second run made of the fixture's remote first-chunk and read-seq rows, once per latency emulation.
  const remote = rows.filter((r) => r.source === 'remote' && (r.scenario === 'first-chunk' || r.scenario === 'read-seq'));
  const methods = ['server-delay', 'nbdkit-delay'].flatMap((latency) => remote.map((r) => ({ ...r, runId: 'methods', latency })));

  it('is drawn from the run with nbdkit-delay rows only, and that run feeds no other figure', async () => {
    const { figures } = buildFigures([...rows, ...methods], { thesis });
    const fig = figures.find((f) => f.name === 'latency-methods');
    expect(fig?.runs).toEqual(['methods']);
    for (const f of figures.filter((f) => f.name !== 'latency-methods')) expect(f.runs, f.name).toEqual(['fixture']);
    const drawn = (fig!.spec as { data: { values: { method: string; strategy: string }[] } }).data.values;
    expect(new Set(drawn.map((v) => v.method))).toEqual(new Set(['server-delay', 'nbdkit-delay']));
    const logger = collectingLogger();
    compile(fig!.spec, { logger });
    expect(logger.warnings).toEqual([]);
    const { warnings } = await specToSvg(fig!.spec);
    expect(warnings).toEqual([]);
  });

  it('is skipped when no row used nbdkit-delay', () => {
    const { skipped } = buildFigures(
      methods.filter((r) => r.latency === 'server-delay'),
      { thesis },
    );
    expect(skipped).toContain('latency-methods');
  });
});
