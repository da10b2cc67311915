// `faultlab study` end to end on a tiny list of tiny matrices (real child
// processes and servers): one commit or --allow-dirty, resume keeps finished
// cells, the paper filled from the study and re-read through inputs.json.
// Plus the committed list itself: every matrix loads, 5+ repetitions per cell.
import { describe, expect, it } from 'vitest';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCsvTable } from '../analysis/csv.js';
import { spawn } from 'node:child_process';
import { CLI, faultlab } from './helpers.js';
import { defaultStudyList, loadStudyList, selectCells } from '../harness/study.js';
import { cellId } from '../harness/matrix.js';
import { judgeVirtualization, kernelCmdline } from '../harness/env.js';
import { readPaperInputs } from '../harness/paper-inputs.js';

const matrixA = {
  name: 'study-a',
  description: 'two local cells',
  groups: [{ name: 'pull', scenario: 'read-seq', strategy: ['uffd', 'sigsegv'], source: 'local', region: '256KiB', repeat: 2 }],
};
const matrixB = {
  name: 'study-b',
  description: 'three cells, one remote',
  groups: [
    { name: 'first', scenario: 'first-chunk', strategy: ['memory', 'uffd'], source: 'local', region: '1MiB', repeat: 3 },
    { name: 'remote', scenario: 'read-seq', strategy: 'uffd', source: 'remote', rtt: 0, region: '256KiB', repeat: 2 },
  ],
};

/** A study list of the two matrices in a fresh folder; B's quick variant keeps one group. */
function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'faultlab-study-'));
  writeFileSync(join(dir, 'a.json'), JSON.stringify(matrixA));
  writeFileSync(join(dir, 'b.json'), JSON.stringify(matrixB));
  const list = join(dir, 'list.json');
  writeFileSync(
    list,
    JSON.stringify({
      matrices: [
        { name: 'a', matrix: join(dir, 'a.json'), quick: null },
        { name: 'b', matrix: join(dir, 'b.json'), quick: { groups: ['first'], repeat: 1 } },
      ],
    }),
  );
  return { dir, list, out: join(dir, 'study') };
}

const COMMIT = { FAULTLAB_COMMIT: '0123456789ab' };
const csv = (f: string) => parseCsvTable(readFileSync(f, 'utf8'));
const json = (f: string) => JSON.parse(readFileSync(f, 'utf8'));

describe('faultlab study', () => {
  it('refuses a dirty tree without --allow-dirty, before running anything; with it, env.json and the paper say so', () => {
    const { dir, list, out } = setup();
    const dirty = { FAULTLAB_COMMIT: '0123456789ab-dirty' };
    const r = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], dirty);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toMatch(/uncommitted changes.*--allow-dirty/);
    expect(existsSync(join(out, 'env.json'))).toBe(false);

    const paper = join(dir, 'paper', 'paper.md');
    const ok = faultlab(['study', '--list', list, '--out', out, '--allow-dirty', '--paper', paper], dirty, 300_000);
    expect(ok.status, ok.stderr).toBe(0);
    const env = json(join(out, 'env.json'));
    expect(env).toMatchObject({ study: true, allow_dirty: true, dirty: true, commit: '0123456789ab-dirty', complete: true, failed_cells: 0 });
    expect(json(join(out, 'b', 'env.json')).study).toMatchObject({ allow_dirty: true });
    expect(readFileSync(paper, 'utf8')).toMatch(/with --allow-dirty/);
  }, 300_000);

  it('runs every matrix into its folder at one commit, with an ETA; the same --out resumes, keeping finished cells', () => {
    const { dir, list, out } = setup();
    const r = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], COMMIT, 300_000);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/\[\d+\/5 [ab]\] ETA \d/);
    const env = json(join(out, 'env.json'));
    expect(env).toMatchObject({ study: true, quick: false, allow_dirty: false, commit: '0123456789ab', complete: true });
    expect(env.matrices.map((m: { name: string; cells: number }) => `${m.name}:${m.cells}`)).toEqual(['a:2', 'b:3']);
    expect(env.virtualization).toHaveProperty('virtualized');
    expect(env.kernel_cmdline).toBe(kernelCmdline(readFileSync('/proc/cmdline', 'utf8')));
    expect(env.doctor.machine_floors).toHaveProperty('minor_fault_write_ns');
    const a = csv(join(out, 'a', 'runs.csv'));
    expect(a.rows.length).toBe(4);
    expect(new Set(a.rows.map((x) => x.run_id))).toEqual(new Set(['study/a']));
    expect(a.rows.every((x) => x.status === 'ok' && x.commit === '0123456789ab' && Number(x.setup_ns) > 0)).toBe(true);

    // Cut b's last cell off as if the study had been interrupted there.
    const bCsv = join(out, 'b', 'runs.csv');
    const b = csv(bCsv);
    const cells = [...new Set(b.rows.map((x) => x.cell_id))];
    expect(cells.length).toBe(3);
    const lines = readFileSync(bCsv, 'utf8').trimEnd().split('\n');
    const lost = cells[2];
    const kept = lines.filter((l) => l.split(',')[1] !== lost);
    writeFileSync(bCsv, kept.join('\n') + '\n');
    writeFileSync(join(out, 'b', 'env.json'), JSON.stringify({ ...json(join(out, 'b', 'env.json')), complete: false }));
    writeFileSync(join(out, 'env.json'), JSON.stringify({ ...env, complete: false }));
    const aBefore = readFileSync(join(out, 'a', 'runs.csv'), 'utf8');

    // A folder that is not a study is not written into: a matrix's run, a folder of other files.
    const runDir = faultlab(['study', '--list', list, '--out', join(out, 'a'), '--skip-paper'], COMMIT);
    expect(runDir.status).toBe(2);
    expect(runDir.stderr).toMatch(/holds something other than a study/);
    const other = faultlab(['study', '--list', list, '--out', dir, '--skip-paper'], COMMIT);
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/not empty and holds no study/);

    // Another commit may not continue it.
    const moved = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], { FAULTLAB_COMMIT: 'fedcba987654' });
    expect(moved.status).toBe(2);
    expect(moved.stderr).toMatch(/started at commit 0123456789ab.*one commit/);

    const again = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], COMMIT, 300_000);
    expect(again.status, again.stderr).toBe(0);
    expect(again.stderr).toMatch(/resuming, 4 of 5 cells kept/);
    expect(readFileSync(join(out, 'a', 'runs.csv'), 'utf8')).toBe(aBefore); // a was complete: not touched
    const after = readFileSync(bCsv, 'utf8');
    expect(after.startsWith(kept.join('\n') + '\n')).toBe(true); // b's finished cells kept, byte for byte
    const b2 = csv(bCsv);
    expect(b2.rows.filter((x) => x.cell_id === lost).length).toBe(2); // the lost cell, run again
    expect(b2.rows.length).toBe(b.rows.length);
    expect(json(join(out, 'env.json'))).toMatchObject({ complete: true, resumed: [expect.any(String)] });
  }, 300_000);

  it('an interrupted study (SIGINT) exits 130, says it is incomplete, and the same command finishes it', async () => {
    const { list, out } = setup();
    const child = spawn(process.execPath, [CLI, 'study', '--list', list, '--out', out, '--skip-paper'], {
      stdio: 'ignore',
      env: { ...process.env, ...COMMIT },
    });
    const aCsv = join(out, 'a', 'runs.csv');
    // Interrupt once a's first cell has its rows.
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (existsSync(aCsv) && readFileSync(aCsv, 'utf8').trim().split('\n').length >= 3) {
          clearInterval(poll);
          child.kill('SIGINT');
          resolve();
        }
      }, 20);
    });
    const code = await new Promise((resolve) => child.on('close', resolve));
    expect(code).toBe(130);
    expect(json(join(out, 'env.json'))).toMatchObject({ complete: false, interrupted: true });
    const r = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], COMMIT, 300_000);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/resuming, [1-4] of 5 cells kept/);
    expect(json(join(out, 'env.json')).complete).toBe(true);
    // Every cell exactly once.
    expect(csv(aCsv).rows.length).toBe(4);
    expect(new Set(csv(aCsv).rows.map((x) => x.cell_id)).size).toBe(2);
    expect(csv(join(out, 'b', 'runs.csv')).rows.length).toBe(3 + 3 + 2);
  }, 300_000);

  it('--quick runs the quick variants and fills a copy of the paper; faultlab paper without --in re-reads it from inputs.json', () => {
    const { list, out } = setup();
    const r = faultlab(['study', '--list', list, '--out', out, '--quick'], COMMIT, 300_000);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(join(out, 'a'))).toBe(false); // quick: null
    expect(csv(join(out, 'b', 'runs.csv')).rows.length).toBe(2); // first: 2 cells x 1 repetition
    const paper = join(out, 'paper', 'paper.md');
    const inputs = join(out, 'paper', 'inputs.json');
    expect(readPaperInputs(inputs)).toEqual([join(out, 'b')]);
    expect(json(inputs).runs).toEqual(['../b']);
    const md = readFileSync(paper, 'utf8');
    expect(md).toMatch(/faultlab study --quick/);
    expect(md).toMatch(/generated by `faultlab paper` from results\/study\/b/);

    // Regenerated from inputs.json alone: the same bytes. Without it: one clear error.
    const p = faultlab(['paper', '--paper', paper]);
    expect(p.status, p.stderr).toBe(0);
    expect(readFileSync(paper, 'utf8')).toBe(md);
    writeFileSync(inputs, JSON.stringify({ runs: [] }));
    const bad = faultlab(['paper', '--paper', paper]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/inputs\.json: "runs" must be a non-empty list/);
  }, 300_000);
});

describe('faultlab study --spread-with', () => {
  it('refuses, in one line and before running anything, a folder that is not a study, or a study lacking a paper matrix', () => {
    const { dir, list, out } = setup();
    const refused = (other: string, extra: string[] = []) => {
      const r = faultlab(['study', '--list', list, '--out', out, '--spread-with', other, ...extra], COMMIT);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(existsSync(out)).toBe(false);
      return r.stderr;
    };
    expect(refused(join(dir, 'missing'))).toMatch(/^faultlab: --spread-with \S+missing: not a study folder \(no env\.json\)/);
    // A study folder of the same list that holds matrix a only.
    const other = join(dir, 'other');
    mkdirSync(join(other, 'a'), { recursive: true });
    writeFileSync(join(other, 'env.json'), JSON.stringify({ study: true, quick: false, complete: true }));
    writeFileSync(join(other, 'a', 'runs.csv'), 'run_id\n');
    writeFileSync(join(other, 'a', 'env.json'), '{}');
    expect(refused(other)).toMatch(/--spread-with \S+other: lacks matrix b /);
    writeFileSync(join(other, 'env.json'), JSON.stringify({ study: true, quick: true, complete: true }));
    expect(refused(other)).toMatch(/a --quick study; this one is full/);
    expect(refused(other, ['--skip-paper'])).toMatch(/--skip-paper/);
  });

  it('refuses to resume into a folder whose env.json is not a study, or not JSON, in one line', () => {
    const { list, out } = setup();
    mkdirSync(out, { recursive: true });
    for (const [text, why] of [
      ['{"run": 1}', /its env\.json has no "study": true/],
      ['{not json', /its env\.json is not JSON/],
    ] as const) {
      writeFileSync(join(out, 'env.json'), text);
      const r = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], COMMIT);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
      expect(r.stderr).toMatch(why);
    }
  });

  it('refuses, in one line and before running anything, a list with nbdkit-delay cells where nbdkit is missing', () => {
    const { dir, list, out } = setup();
    const withNbdkit = {
      ...matrixB,
      groups: [
        ...matrixB.groups,
        { name: 'ext', scenario: 'first-chunk', strategy: 'uffd', source: 'remote', rtt: 2, latency: 'nbdkit-delay', region: '1MiB' },
      ],
    };
    writeFileSync(join(dir, 'b.json'), JSON.stringify(withNbdkit));
    const empty = mkdtempSync(join(tmpdir(), 'faultlab-no-path-')); // a PATH where no nbdkit is found
    const r = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], { ...COMMIT, PATH: empty });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n'), r.stderr).toHaveLength(1);
    expect(r.stderr).toMatch(/^faultlab: matrices b have cells with latency nbdkit-delay, but nbdkit is not installed/);
    expect(existsSync(out)).toBe(false);
  });

  it('a second study of the same list fills the paper with the spread between the two, and inputs.json keeps it', () => {
    const { dir, list, out } = setup();
    const first = faultlab(['study', '--list', list, '--out', out, '--skip-paper'], COMMIT, 300_000);
    expect(first.status, first.stderr).toBe(0);
    const second = join(dir, 'second');
    const paper = join(dir, 'paper', 'paper.md');
    const r = faultlab(['study', '--list', list, '--out', second, '--spread-with', out, '--paper', paper], COMMIT, 300_000);
    expect(r.status, r.stderr).toBe(0);
    const inputs = json(join(dir, 'paper', 'inputs.json'));
    const abs = (p: string) => join(dir, 'paper', p);
    expect(inputs.runs.map(abs)).toEqual([join(second, 'a'), join(second, 'b')]);
    expect(inputs.spread.map(abs)).toEqual([join(second, 'a'), join(second, 'b'), join(out, 'a'), join(out, 'b')]);
    expect(json(join(second, 'env.json')).spread_with).toBe(out);
    const spreadSection = readFileSync(paper, 'utf8').split('faultlab:begin run-spread')[1]?.split('faultlab:end')[0] ?? '';
    expect(spreadSection).toMatch(/study\/a/); // matrix a: the first study's folder and the second's, compared cell by cell
    expect(spreadSection).toMatch(/second\/a/);
    // The study wrote its end before filling the paper: the reproduce section says how long it took.
    const reproduce = readFileSync(paper, 'utf8').split('faultlab:begin reproduce')[1]?.split('faultlab:end')[0] ?? '';
    expect(reproduce).toMatch(/\| time taken \| \d.* of running/);
    expect(reproduce).not.toMatch(/not recorded: the study/);
    // The set-up table names the boot options the runs had (a hypervisor's, mitigations).
    const setupSection = readFileSync(paper, 'utf8').split('faultlab:begin setup')[1]?.split('faultlab:end')[0] ?? '';
    expect(setupSection).toContain(`| kernel command line | ${kernelCmdline(readFileSync('/proc/cmdline', 'utf8'))} |`);
  }, 600_000);
});

describe('the committed study list', () => {
  it('every matrix and quick variant loads; every full cell has at least 5 repetitions', () => {
    const entries = loadStudyList(defaultStudyList);
    expect(entries.map((e) => e.name)).toEqual(expect.arrayContaining(['thesis', 'push', 'design-space', 'hugetlb']));
    for (const e of entries) {
      const { cells } = selectCells(e.full);
      const few = cells.filter((c) => c.params.repeat < 5);
      expect(
        few.map((c) => `${c.group} ${c.id} repeat ${c.params.repeat}`),
        e.name,
      ).toEqual([]);
      if (e.quick) expect(selectCells(e.quick).cells.length, `${e.name} --quick`).toBeGreaterThan(0);
    }
  });

  it('a repeat override gives each cell its own id: a quick row is never taken for the full cell', () => {
    const full = selectCells({ matrix: 'hugetlb' }).cells;
    const quick = selectCells({ matrix: 'hugetlb', repeat: 2 }).cells;
    expect(quick.map((c) => c.params.repeat)).toEqual(full.map(() => 2));
    expect(full.some((c) => c.params.repeat !== 2)).toBe(true);
    for (const [i, c] of quick.entries()) {
      expect(c.id, c.group).toBe(cellId({ ...full[i], params: { ...full[i].params, repeat: 2 } }));
      expect(c.id, c.group).not.toBe(full[i].id);
    }
    // The same repeat as the matrix's is the same cell.
    const same = selectCells({ matrix: 'hugetlb', repeat: full[0].params.repeat }).cells[0];
    expect(same.id).toBe(full[0].id);
  });

  it('a list with an unknown key, a repeated name or an unknown group is refused by name', () => {
    const dir = mkdtempSync(join(tmpdir(), 'faultlab-study-list-'));
    const write = (doc: object) => {
      const f = join(dir, `l${Math.random()}.json`);
      writeFileSync(f, JSON.stringify(doc));
      return f;
    };
    expect(() => loadStudyList(write({ matrices: [{ matrix: 'thesis', quick: { colour: 1 } }] }))).toThrow(/unknown key 'colour'/);
    expect(() => loadStudyList(write({ matrices: [{ matrix: 'thesis' }, { matrix: 'thesis' }] }))).toThrow(/'thesis' twice/);
    expect(() => selectCells({ matrix: 'thesis', groups: ['nope'] })).toThrow(/no group nope/);
    expect(() => loadStudyList(write({ matrices: [] }))).toThrow(/non-empty/);
  });
});

describe('kernel command line', () => {
  it("keeps the kernel's boot parameters, not init's after ' -- '", () => {
    expect(kernelCmdline('quiet mitigations=auto -- --init-flag x\n')).toBe('quiet mitigations=auto');
    expect(kernelCmdline('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro\n')).toBe('BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro');
    expect(kernelCmdline('-- only init')).toBeNull();
    expect(kernelCmdline('')).toBeNull();
  });
});

describe('virtualisation verdict', () => {
  it('flags a slow minor fault, the hypervisor flag or systemd-detect-virt, and says which', () => {
    const fast = { machine_floors: { minor_fault_write_ns: 900, syscall_ns: 80 }, hypervisor_flag: false };
    expect(judgeVirtualization(fast, 'none')).toMatchObject({ virtualized: false, reasons: [], minor_fault_ns: 900, syscall_ns: 80 });
    expect(judgeVirtualization(fast, null).virtualized).toBe(false);
    const slow = judgeVirtualization({ machine_floors: { minor_fault_write_ns: 5000, syscall_ns: 300 } }, 'none');
    expect(slow.virtualized).toBe(true);
    expect(slow.reasons.join()).toMatch(/minor fault costs 5\.0 us/);
    expect(judgeVirtualization({ ...fast, hypervisor_flag: true }, null).reasons).toEqual(['the CPU reports the hypervisor flag']);
    expect(judgeVirtualization(fast, 'kvm').reasons).toEqual(['systemd-detect-virt says kvm']);
    expect(judgeVirtualization({}, null)).toMatchObject({ virtualized: false, minor_fault_ns: null, syscall_ns: null });
    const halting = judgeVirtualization(
      { ...fast, wake_floors: { same_cpu_round_trip_ns: 6000, cross_cpu_round_trip_ns: 39000, guest_halt_poll_ns: 0 } },
      'none',
    );
    expect(halting).toMatchObject({ virtualized: true, same_cpu_wake_ns: 6000, cross_cpu_wake_ns: 39000, guest_halt_poll_ns: 0 });
    expect(halting.reasons.join()).toMatch(/another CPU takes 39\.0 us against 6\.0 us .*guest_halt_poll_ns=0/);
    const polling = judgeVirtualization({ ...fast, wake_floors: { same_cpu_round_trip_ns: 6000, cross_cpu_round_trip_ns: 9000 } }, 'none');
    expect(polling.virtualized).toBe(false);
  });
});
