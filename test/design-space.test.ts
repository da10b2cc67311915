// Issue 6 through the harness: prefetch policies (local and over the chunk
// server), background fill, application threads, the new workloads, the
// sigsegv VMA limit and its mitigation, bench and matrix options, and the
// design-space figures. Every run reads real bytes and verifies them.
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { compile } from 'vega-lite';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NativeRegion } from '../harness/native.js';
import { NbdServer } from '../harness/server/nbd-server.js';
import { loadMatrix, cellId } from '../harness/matrix.js';
import { buildFigures } from '../analysis/figures/index.js';
import { rowsFromCsv } from '../analysis/runs.js';
import { parseCsvTable } from '../analysis/csv.js';
import { COLUMNS } from '../harness/columns.js';
import { PARAM_LIST, type Param } from '../harness/params.js';
import { faultlab, kernelHasUffdMove, lastJson } from './helpers.js';

const HAS_MOVE = kernelHasUffdMove();

async function run(spec: string, runSpec = 'workload=read-seq') {
  const r = await NativeRegion.create(spec);
  try {
    return await r.run(runSpec);
  } finally {
    r.destroy();
  }
}

const POLICIES = ['none', 'ahead:8', 'adaptive', 'background', 'criu'];
const LAZY = ['uffd', 'sigsegv'];
let server: NbdServer;
const remote = () => `source=tcp host=${server.host} port=${server.port}`;

beforeAll(async () => {
  server = NbdServer.start({ regionBytes: 4 << 20, seed: 1 });
});
afterAll(() => server.stop());

describe('every prefetch policy reads a real region and verifies it; each chunk is fetched once', () => {
  for (const source of ['local', 'remote'])
    for (const strategy of LAZY)
      for (const prefetch of POLICIES)
        it(`${strategy} ${source} prefetch=${prefetch}`, async () => {
          const r = await run(
            `strategy=${strategy} region=4MiB chunk=16KiB prefetch=${prefetch} depth=8 cpus=free ${source === 'local' ? 'source=local' : remote()}`,
          );
          expect(r.verified).toBe(true);
          expect(r.prefetch).toBe(prefetch);
          expect(Number(r.faults) + Number(r.prefetched)).toBe(256);
          expect(r.bytes_fetched).toBe(4 << 20);
          if (prefetch === 'none') expect(r.prefetched).toBe(0);
        });
});

// continue: memfd, MINOR faults, UFFDIO_CONTINUE; move: a populated anonymous
// mirror, UFFDIO_MOVE (Linux 6.8+; where the kernel lacks it, the refusal is
// what is tested, and the test's name says so).
describe('uffd_install=continue and =move: every policy verifies', () => {
  if (!HAS_MOVE)
    it('uffd_install=move: this kernel lacks UFFD_FEATURE_MOVE (Linux 6.8+), so only its clear refusal is tested', () => {
      const r = faultlab(['bench', '--strategy', 'uffd', '--uffd-install', 'move', '--region', '1MiB']);
      expect(r.status).toBe(1);
      expect(r.stderr).toMatch(/uffd_install=move needs UFFD_FEATURE_MOVE \(Linux 6\.8\+\)/);
    });
  for (const install of HAS_MOVE ? ['continue', 'move'] : ['continue'])
    for (const source of ['local', 'remote'])
      for (const prefetch of POLICIES)
        it(`uffd ${install} ${source} prefetch=${prefetch}`, async () => {
          const r = await run(
            `strategy=uffd uffd_install=${install} region=4MiB chunk=16KiB prefetch=${prefetch} depth=8 cpus=free ${source === 'local' ? 'source=local' : remote()}`,
            'workload=read-random seed=4',
          );
          expect(r.verified).toBe(true);
          expect(r.uffd_install).toBe(install);
          expect(Number(r.faults) + Number(r.prefetched)).toBe(256);
        });
  if (HAS_MOVE)
    it('bench --uffd-install move over the embedded chunk server verifies; with huge=hugetlb it is refused as usage', () => {
      const ok = faultlab(['bench', '--strategy', 'uffd', '--uffd-install', 'move', '--source', 'remote', '--chunk', '256KiB', '--region', '4MiB', '--json']);
      expect(ok.status, ok.stderr).toBe(0);
      const row = lastJson(ok.stdout);
      expect(row.verified).toBe(true);
      expect(row.uffd_install).toBe('move');
      const bad = faultlab(['bench', '--strategy', 'uffd', '--uffd-install', 'move', '--huge', 'hugetlb', '--chunk', '2MiB', '--region', '8MiB']);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(/--uffd-install move moves small anonymous pages: use --huge none or thp/);
    });
});

describe('background and criu fill the whole region while the application reads one chunk', () => {
  for (const strategy of LAZY)
    for (const prefetch of ['background', 'criu'])
      it(`${strategy} prefetch=${prefetch} over the chunk server`, async () => {
        const r = await run(`strategy=${strategy} region=4MiB chunk=16KiB prefetch=${prefetch} ${remote()}`, 'workload=first-chunk wait_fill=1');
        expect(r.fill_verified).toBe(true);
        expect(r.chunks_present).toBe(256);
        expect(Number(r.faults) + Number(r.prefetched)).toBe(256);
        expect(Number(r.fill_ns)).toBeGreaterThan(0);
      });
});

describe('application threads: four threads fault at once, each on its own share', () => {
  for (const strategy of LAZY)
    for (const source of ['local', 'remote'])
      it(`${strategy} ${source} app_threads=4 read-random`, async () => {
        const r = await run(
          `strategy=${strategy} region=4MiB chunk=4KiB handler_threads=2 cpus=free ${source === 'local' ? 'source=local' : remote()}`,
          'workload=read-random app_threads=4 seed=3',
        );
        expect(r.verified).toBe(true);
        expect(r.app_threads).toBe(4);
        expect(r.chunks_touched).toBe(1024);
        expect(r.faults).toBe(1024);
        // Machine-wide TLB shootdowns while the threads ran, where x86 counts them.
        const tlb = r.tlb_shootdowns as number | null;
        if (readFileSync('/proc/interrupts', 'utf8').match(/^\s*TLB:/m)) expect(Number.isInteger(tlb) && tlb! >= 0).toBe(true);
        else expect(tlb).toBeNull();
      });
});

describe('bench: read-zipf, read-sparse, prefetch and thread options', () => {
  it('read-zipf --zipf-s 1.2: repeats hit a hot set, every access verified', () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--scenario', 'read-zipf', '--zipf-s', '1.2', '--region', '8MiB', '--json']);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.zipf_s).toBe(1.2);
    expect(j.chunks_touched).toBe(2048);
    expect(j.unique_chunks as number).toBeLessThan(1024);
    expect(j.faults).toBe(j.unique_chunks);
  });

  it('read-sparse --touch-fraction 0.1 over a remote with prefetch adaptive: verified', () => {
    const r = faultlab([
      'bench',
      '--strategy',
      'sigsegv',
      '--scenario',
      'read-sparse',
      '--touch-fraction',
      '0.1',
      '--source',
      'remote',
      '--region',
      '8MiB',
      '--chunk',
      '16KiB',
      '--prefetch',
      'adaptive',
      '--depth',
      '8',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.touch_fraction).toBe(0.1);
    expect(j.chunks_touched).toBe(51);
    expect(j.prefetch).toBe('adaptive');
    expect(j.depth).toBe(8);
  });

  it('--app-threads 3 with uffd and 2 handler threads', () => {
    const r = faultlab([
      'bench',
      '--strategy',
      'uffd',
      '--scenario',
      'read-seq',
      '--region',
      '4MiB',
      '--app-threads',
      '3',
      '--handler-threads',
      '2',
      '--cpus',
      'free',
      '--json',
    ]);
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.app_threads).toBe(3);
    expect(j.faults).toBe(1024);
  });

  const bad: [string, string[], RegExp][] = [
    ['unknown prefetch policy', ['--strategy', 'uffd', '--prefetch', 'sideways'], /bad prefetch 'sideways'/],
    ['prefetch on a baseline', ['--strategy', 'eager', '--prefetch', 'ahead:4'], /--prefetch is for uffd and sigsegv/],
    ['vma span on uffd', ['--strategy', 'uffd', '--vma-span', 'auto'], /--vma-span is for sigsegv/],
    ['touch fraction of 0', ['--strategy', 'uffd', '--scenario', 'read-sparse', '--touch-fraction', '0'], /touch fraction 0 must be in \(0, 1\]/],
    ['first-chunk with threads', ['--strategy', 'uffd', '--scenario', 'first-chunk', '--app-threads', '2'], /first-chunk is one access/],
    ['depth 0', ['--strategy', 'sigsegv', '--prefetch', 'background', '--depth', '0'], /depth 0 must be/],
  ];
  for (const [what, args, msg] of bad)
    it(`refused: ${what}`, () => {
      const r = faultlab(['bench', ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
});

describe('the VMA limit (vm.max_map_count, default 65530)', () => {
  it('sigsegv read-random over 1 GiB of 4 KiB chunks fails with one clear line, no crash', () => {
    const r = faultlab(['bench', '--strategy', 'sigsegv', '--scenario', 'read-random', '--region', '1GiB', '--chunk', '4KiB', '--json'], {}, 180_000);
    expect(r.signal).toBeNull();
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/sigsegv: fault not served at offset 0x[0-9a-f]+: mprotect: ENOMEM after \d+ chunks opened: vm.max_map_count \(\d+\) reached/);
    expect(r.stdout).not.toMatch(/"verified"/);
  }, 200_000);

  it('vma_span=auto reads the same region and verifies', () => {
    const r = faultlab(
      ['bench', '--strategy', 'sigsegv', '--scenario', 'read-random', '--region', '1GiB', '--chunk', '4KiB', '--vma-span', 'auto', '--json'],
      {},
      180_000,
    );
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.vma_span as number).toBeGreaterThan(1);
    expect(j.faults).toBe(262144);
  }, 200_000);
});

describe('the design-space matrix and its columns', () => {
  it('scenarios/design-space.json loads: every group, knobs passed through', () => {
    const m = loadMatrix('design-space');
    const groups = new Set(m.cells.map((c) => c.group));
    for (const g of ['prefetch-vs-rtt', 'prefetch-vs-rtt-move', 'crossover', 'threads-remote', 'chunk-sweep-0ms', 'vma-limit'])
      expect(groups.has(g), g).toBe(true);
    const c = m.cells.find((x) => x.group === 'prefetch-vs-rtt' && x.params.prefetch === 'criu')!;
    expect(c.params.depth).toBe(64);
    expect(m.cells.some((x) => x.params.vmaSpan === 'auto')).toBe(true);
    expect(m.cells.some((x) => x.params.touchFraction === 0.02)).toBe(true);
  });

  it('scenarios/hugetlb.json: every huge-page cell has its small-page twin, 2 MiB chunks', () => {
    const m = loadMatrix('hugetlb');
    const huge = m.cells.filter((c) => c.params.huge === 'hugetlb');
    expect(huge.length).toBe(6);
    for (const c of huge) {
      expect(c.params.chunkBytes).toBe(2 << 20);
      const twin = m.cells.filter((x) => x.params.huge === 'none' && cellId({ ...x, params: { ...x.params, huge: 'hugetlb' } }) === cellId(c));
      expect(twin.length, `twin of ${cellId(c)}`).toBe(1);
    }
    // --filter by the pages and by the install, as the rows name them (sigsegv has no install)
    const listed = (...f: string[]) =>
      faultlab(['run', '--matrix', 'hugetlb', ...f.flatMap((x) => ['--filter', x]), '--list'])
        .stdout.trim()
        .split('\n')
        .filter(Boolean);
    expect(listed('huge=hugetlb')).toHaveLength(6);
    const copy = listed('uffd_install=copy');
    expect(copy).toHaveLength(4);
    for (const line of copy) expect(line).toContain('"strategy":"uffd"');
    expect(listed('uffd_install=none', 'huge=none')).toHaveLength(2); // sigsegv, local and remote
  });

  it('the hugetlb matrix runs its huge-page cells where 2 MiB pages are free, and fails each with the advice where none are', async () => {
    const { doctorNative } = await import('../harness/native.js');
    const free = Number(doctorNative().hugepages_2m_free ?? 0);
    const out = mkdtempSync(join(tmpdir(), 'faultlab-hugetlb-'));
    try {
      const r = faultlab(['run', '--matrix', 'hugetlb', '--filter', 'source=local', '--filter', 'strategy=sigsegv', '--repeat', '1', '--out', out]);
      const [dir] = readdirSync(out);
      const rows = parseCsvTable(readFileSync(join(out, dir, 'runs.csv'), 'utf8')).rows;
      const small = rows.filter((x) => x.huge === 'none');
      expect(small.map((x) => [x.status, x.verified])).toEqual([['ok', 'true']]);
      const huge = rows.filter((x) => x.huge === 'hugetlb');
      expect(huge.length).toBe(1);
      if (free >= 16) {
        console.log(`hugetlb: ${free} free 2 MiB pages, the huge-page cell ran`);
        expect([huge[0].status, huge[0].verified]).toEqual(['ok', 'true']);
        expect(r.status).toBe(0);
      } else {
        console.log(`hugetlb: ${free} free 2 MiB pages (vm.nr_hugepages), so the huge-page cell must fail with the advice`);
        expect(huge[0].status).toBe('failed');
        expect(String(huge[0].message)).toMatch(/reserve them with sysctl vm\.nr_hugepages/);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  }, 120_000);

  it('cells without issue-6 keys keep the ids they had before (resume of older runs)', () => {
    for (const c of loadMatrix('quick').cells) {
      const p = c.params;
      const old = [
        c.kind,
        p.strategy,
        p.scenario,
        p.source,
        p.rttMs,
        p.regionBytes,
        p.chunkBytes,
        p.cpus,
        p.handlerThreads,
        p.seed,
        p.repeat,
        c.count ?? '',
      ].join('/');
      expect(cellId(c)).toBe(createHash('sha256').update(old).digest('hex').slice(0, 12));
    }
  });

  it('design-space cells keep the ids they had as the beyond matrix; the old name still loads it', () => {
    const m = loadMatrix('design-space');
    for (const c of m.cells) {
      const p = c.params;
      const push = [p.pattern, p.writeFraction, p.intervals, p.tracker];
      const knobs = [p.prefetch, p.depth, p.pfConns, p.appThreads, p.zipfS, p.touchFraction, p.vmaSpan, p.huge, p.uffdInstall];
      const set = (v: unknown[]) => v.some((x) => x !== undefined);
      const old = [
        c.kind,
        p.strategy,
        p.scenario,
        p.source,
        p.rttMs,
        p.regionBytes,
        p.chunkBytes,
        p.cpus,
        p.handlerThreads,
        p.seed,
        p.repeat,
        c.count ?? '',
        ...(set(push) ? push : []),
        ...(set(knobs) ? ['beyond', ...knobs] : []),
      ].join('/');
      expect(cellId(c)).toBe(createHash('sha256').update(old).digest('hex').slice(0, 12));
    }
    expect(loadMatrix('beyond').cells.map((c) => c.id)).toEqual(m.cells.map((c) => c.id));
  });

  it('runs.csv has a column for every new key, and every parameter column is one of its columns', () => {
    for (const k of ['prefetch', 'depth', 'app_threads', 'zipf_s', 'touch_fraction', 'prefetched', 'inflight_waits', 'vma_span', 'map_count', 'tlb_shootdowns'])
      expect(COLUMNS as readonly string[]).toContain(k);
    for (const [name, d] of PARAM_LIST) if (d.column) expect(COLUMNS as readonly string[], name).toContain(d.column);
  });

  it('each parameter has its own flag, matrix key and column', () => {
    for (const facet of [(d: Param<unknown>) => d.flag, (d: Param<unknown>) => d.matrix?.key, (d: Param<unknown>) => d.column]) {
      const names = PARAM_LIST.map(([, d]) => facet(d)).filter((x) => x !== undefined);
      expect(new Set(names).size).toBe(names.length);
    }
  });
});

/** A CSV of made-up rows (test data): every design-space figure gets data, and one prefetch row would sit in a thesis figure's slice. */
function designSpaceCsv(): string {
  const rows: Record<string, string | number>[] = [];
  const base = {
    status: 'ok',
    repetition: 0,
    cpus: 'free',
    first_access_ns: 1000,
    fault_ns_p50: 1000,
    fault_ns_p99: 2000,
    fault_ns_cdf: '',
    region_bytes: 64 << 20,
    handler_threads: 1,
    app_threads: 1,
  };
  for (const strategy of LAZY)
    for (const prefetch of ['none', 'ahead:64'])
      for (const rtt of [0, 10, 25])
        rows.push({
          ...base,
          strategy,
          scenario: 'read-seq',
          source: 'remote',
          rtt_ms: rtt,
          chunk_bytes: 1 << 20,
          prefetch,
          throughput_mibps: prefetch === 'none' ? 100 / (1 + rtt) : 500,
          total_ns: 1e8,
        });
  for (const strategy of ['eager', 'uffd'])
    for (const f of [0.05, 0.5, 1])
      rows.push({
        ...base,
        strategy,
        scenario: 'read-sparse',
        source: 'remote',
        rtt_ms: 10,
        chunk_bytes: 65536,
        prefetch: 'none',
        touch_fraction: f,
        throughput_mibps: 10,
        total_ns: strategy === 'eager' ? 2e8 : f * 1e9,
      });
  for (const t of [1, 2, 4])
    rows.push({
      ...base,
      strategy: 'sigsegv',
      scenario: 'read-random',
      source: 'local',
      rtt_ms: 0,
      chunk_bytes: 4096,
      prefetch: 'none',
      app_threads: t,
      throughput_mibps: 100 * t,
      total_ns: 1e8,
    });
  for (const c of [4096, 16384, 65536, 262144])
    rows.push({
      ...base,
      strategy: 'uffd',
      scenario: 'read-seq',
      source: 'local',
      rtt_ms: 0,
      chunk_bytes: c,
      prefetch: 'none',
      throughput_mibps: c / 100,
      total_ns: 1e8,
    });
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  return [cols.join(','), ...rows.map((r) => cols.map((c) => r[c] ?? '').join(','))].join('\n') + '\n';
}

describe('design-space figures', () => {
  it('draw from their rows, compile, and keep prefetch rows out of the thesis figures', () => {
    const rows = rowsFromCsv(designSpaceCsv());
    const { figures } = buildFigures(rows);
    const names = figures.map((f) => f.name);
    for (const n of ['prefetch-vs-rtt', 'lazy-eager-crossover', 'thread-scaling', 'chunk-sweep']) expect(names, n).toContain(n);
    for (const f of figures) expect(() => compile(f.spec), f.name).not.toThrow();
    const pv = JSON.stringify(figures.find((f) => f.name === 'prefetch-vs-rtt')!.spec);
    expect(pv).toContain('thesis: NBD managed mount');
    expect(pv).toContain('ahead:64');
    const tv = figures.find((f) => f.name === 'throughput-vs-rtt');
    expect(tv, 'the no-prefetch rows still make the thesis figure').toBeDefined();
    expect(JSON.stringify(tv!.spec)).not.toContain('"median":500'); // the ahead:64 rows are not in it
    expect(names, 'no huge-page rows, no huge-pages figure').not.toContain('huge-pages');
  });

  it('prefetch-vs-rtt: a panel per install method with the thesis values in each, a band, an unclipped legend', () => {
    const fig = buildFigures(rowsFromCsv(designSpaceCsv())).figures.find((f) => f.name === 'prefetch-vs-rtt')!;
    const spec = fig.spec as {
      facet: { field: string; sort: string[] };
      data: { values: { kind: string; panel: string; series: string; lo?: number; hi?: number; median?: number }[] };
      config: { legend: { labelLimit: number } };
      spec: { layer: { mark: { type: string }; encoding: { y2?: { field: string } } }[] };
    };
    expect(spec.facet.field).toBe('panel');
    expect(spec.facet.sort).toEqual(['uffd (UFFDIO_COPY)', 'sigsegv']);
    const ours = spec.data.values.filter((v) => v.kind === 'ours');
    for (const panel of spec.facet.sort) {
      expect(new Set(ours.filter((v) => v.panel === panel).map((v) => v.series)), panel).toEqual(new Set(['none', 'ahead:64']));
      expect(
        spec.data.values.some((v) => v.kind === 'thesis' && v.panel === panel && v.series.startsWith('thesis: NBD')),
        panel,
      ).toBe(true);
    }
    for (const v of ours) expect(v.lo! <= v.median! && v.median! <= v.hi!).toBe(true);
    expect(
      spec.spec.layer.some((l) => l.mark.type === 'area' && l.encoding.y2?.field === 'hi'),
      'the band',
    ).toBe(true);
    // The longest legend label ("thesis: NBD managed mount (4096 pull workers) (lower bound)") fits.
    expect(spec.config.legend.labelLimit).toBeGreaterThanOrEqual(60 * 11 * 0.8);
    expect(fig.caption).toMatch(/n = 1 repetition per plotted median/);
  });

  it('crossover, threads and chunk-sweep draw an error bar over each median', () => {
    const { figures } = buildFigures(rowsFromCsv(designSpaceCsv()));
    for (const name of ['lazy-eager-crossover', 'thread-scaling', 'chunk-sweep']) {
      const spec = figures.find((f) => f.name === name)!.spec as {
        spec: { layer: { mark: { type: string }; encoding: { y: { field: string }; y2?: { field: string } } }[] };
      };
      const bar = spec.spec.layer.find((l) => l.mark.type === 'rule');
      expect(bar, name).toBeDefined();
      expect([bar!.encoding.y.field, bar!.encoding.y2!.field], name).toEqual(['lo', 'hi']);
    }
  });

  it('huge-pages draws each method and source that has both kinds of page, and nothing else', () => {
    const base = {
      status: 'ok',
      repetition: 0,
      cpus: 'same',
      first_access_ns: 1000,
      fault_ns_p50: 1000,
      fault_ns_p99: 2000,
      fault_ns_cdf: '',
      region_bytes: 32 << 20,
      chunk_bytes: 2 << 20,
      handler_threads: 1,
      app_threads: 1,
      scenario: 'read-seq',
      rtt_ms: 0,
      prefetch: 'none',
      total_ns: 1e8,
    };
    const rows: Record<string, string | number>[] = [];
    for (const source of ['local', 'remote']) {
      rows.push(
        { ...base, strategy: 'sigsegv', source, huge: 'hugetlb', throughput_mibps: 4000 },
        { ...base, strategy: 'sigsegv', source, huge: 'none', throughput_mibps: 2700 },
      );
      rows.push(
        { ...base, strategy: 'uffd', uffd_install: 'continue', source, huge: 'hugetlb', throughput_mibps: 3900 },
        { ...base, strategy: 'uffd', uffd_install: 'continue', source, huge: 'none', throughput_mibps: 2100 },
      );
    }
    rows.push({ ...base, strategy: 'uffd', uffd_install: 'copy', source: 'local', huge: 'hugetlb', throughput_mibps: 2666 }); // no small-page twin
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    const csv = [cols.join(','), ...rows.map((r) => cols.map((c) => r[c] ?? '').join(','))].join('\n') + '\n';
    const fig = buildFigures(rowsFromCsv(csv)).figures.find((f) => f.name === 'huge-pages');
    expect(fig).toBeDefined();
    expect(() => compile(fig!.spec)).not.toThrow();
    const pts = (fig!.spec as { data: { values: { method: string; panel: string; pages: string; median: number }[] } }).data.values;
    expect(pts).toHaveLength(8); // 2 methods x 2 sources x 2 kinds of page
    expect(pts.find((p) => p.method === 'uffd CONTINUE' && p.panel === 'local source' && p.pages.startsWith('huge'))!.median).toBe(3900);
    expect(
      pts.some((p) => p.method === 'uffd COPY'),
      'a method without its twin is left out',
    ).toBe(false);
  });
});
