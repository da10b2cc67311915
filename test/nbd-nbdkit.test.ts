// Every way faultlab pulls and pushes, against a server that is not faultlab's:
// `nbdkit file IMAGE` serving `faultlab image` output. Every strategy that
// reads a source (uffd with each install, sigsegv, eager; memory and disk hold
// their contents locally) with every prefetch policy it takes, and every
// write-track tracker this machine supports, each verifying every byte. Then
// `--latency nbdkit-delay`, nbdkit's delay filter as a latency emulation.
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCell } from '../harness/bench.js';
import { DEFAULTS, type CellParams } from '../harness/cell.js';
import { doctorNative } from '../harness/native.js';
import { writeImage } from '../harness/commands/image.js';
import { PREFETCH_POLICIES } from '../harness/targets.js';
import { faultlab, lastJson } from './helpers.js';
import { skipBecause } from './skip.js';

const NO_NBDKIT = spawnSync('sh', ['-c', 'command -v nbdkit']).status !== 0 ? 'nbdkit not installed (apt-get install nbdkit)' : null;
const REGION = 2 << 20;
const SEED = 5;
const uffd = (doctorNative().uffd_api as { features?: string[] }).features ?? [];
const softDirty = (doctorNative().soft_dirty as { supported: boolean; reason?: string }).supported;

const dir = mkdtempSync(join(tmpdir(), 'faultlab-nbdkit-'));
const children: ChildProcess[] = [];
/** nbdkit serving a fresh image: one for the reads, one the write-track cells overwrite. */
const servers: { read?: string; write?: string } = {};

const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });

async function nbdkit(image: string): Promise<string> {
  writeImage(image, REGION, SEED);
  const port = await freePort();
  const child = spawn('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'file', image], { stdio: 'ignore' });
  children.push(child);
  for (const end = Date.now() + 15_000; !(await accepts(port)); await new Promise((r) => setTimeout(r, 50)))
    if (child.exitCode !== null || Date.now() > end) throw new Error(`nbdkit did not start on port ${port}`);
  return `nbd://127.0.0.1:${port}`;
}

beforeAll(async () => {
  if (NO_NBDKIT) return;
  servers.read = await nbdkit(join(dir, 'read.img'));
  servers.write = await nbdkit(join(dir, 'write.img'));
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
});

const base = (remote: string): CellParams => ({ ...DEFAULTS, source: 'remote', remote, regionBytes: REGION, seed: SEED, repeat: 1, chunkBytes: 4096 });

const LAZY: [string, Partial<CellParams>][] = [
  ['uffd (copy)', { strategy: 'uffd', uffdInstall: 'copy' }],
  ['uffd (continue)', { strategy: 'uffd', uffdInstall: 'continue' }],
  ['uffd (move)', { strategy: 'uffd', uffdInstall: 'move' }],
  ['sigsegv', { strategy: 'sigsegv' }],
];
const CASES: [string, Partial<CellParams>][] = [
  ...LAZY.flatMap(([name, v]) => PREFETCH_POLICIES.map((prefetch): [string, Partial<CellParams>] => [`${name}, prefetch ${prefetch}`, { ...v, prefetch }])),
  ['eager', { strategy: 'eager' }],
];

describe('every strategy and prefetch policy pulls from nbdkit file IMAGE and verifies', () => {
  it.for(CASES)('%s', async ([, v], ctx: TestContext) => {
    if (NO_NBDKIT) skipBecause(ctx, NO_NBDKIT);
    if (v.uffdInstall === 'move' && !uffd.includes('MOVE')) skipBecause(ctx, 'this kernel lacks UFFDIO_MOVE (Linux 6.8+)');
    // background and criu pull the rest after the access; wait_fill makes the run verify all of it.
    const r = await runCell({
      ...base(servers.read!),
      ...v,
      scenario: 'read-seq',
      waitFill: v.prefetch === 'background' || v.prefetch === 'criu' || undefined,
    });
    expect(r.summary.verified, JSON.stringify(r.summary)).toBe(true);
    expect(r.summary.latency).toBe('external');
    expect(Number(r.summary.bytes_fetched)).toBeGreaterThanOrEqual(REGION);
  });
});

const TRACKERS = ['uffd-wp', 'uffd-wp-async', 'mprotect', 'soft-dirty', 'none'] as const;
describe('every write-track tracker pushes to nbdkit file IMAGE and the read-back verifies', () => {
  it.for(TRACKERS)('%s', async (tracker, ctx: TestContext) => {
    if (NO_NBDKIT) skipBecause(ctx, NO_NBDKIT);
    if (tracker === 'uffd-wp-async' && !uffd.includes('WP_ASYNC')) skipBecause(ctx, 'this kernel lacks WP_ASYNC (Linux 6.7+)');
    if (tracker === 'soft-dirty' && !softDirty) skipBecause(ctx, 'soft-dirty unsupported by this kernel (CONFIG_MEM_SOFT_DIRTY)');
    const r = await runCell({ ...base(servers.write!), strategy: tracker, scenario: 'write-track' });
    expect(r.summary.verified, JSON.stringify(r.summary)).toBe(true);
    expect(Number(r.summary.bytes_pushed)).toBeGreaterThan(0);
  });
});

describe('--latency nbdkit-delay', () => {
  it('pulls through nbdkit’s delay filter: each first access takes at least the RTT, every byte verifies', (ctx) => {
    if (NO_NBDKIT) skipBecause(ctx, NO_NBDKIT);
    for (const strategy of ['uffd', 'sigsegv']) {
      const r = faultlab(
        [
          'bench',
          '--strategy',
          strategy,
          '--scenario',
          'first-chunk',
          '--source',
          'remote',
          '--rtt',
          '20',
          '--latency',
          'nbdkit-delay',
          '--region',
          '1MiB',
          '--repeat',
          '3',
          '--json',
        ],
        {},
        60_000,
      );
      expect(r.status, r.stderr).toBe(0);
      const j = lastJson(r.stdout);
      expect(j).toMatchObject({ verified: true, latency: 'nbdkit-delay', rtt_ms: 20 });
      expect(Number(j.first_access_ns)).toBeGreaterThanOrEqual(20e6);
    }
    const seq = faultlab(
      ['bench', '--strategy', 'uffd', '--source', 'remote', '--rtt', '1', '--latency', 'nbdkit-delay', '--region', '256KiB', '--json'],
      {},
      60_000,
    );
    expect(seq.status, seq.stderr).toBe(0);
    expect(lastJson(seq.stdout)).toMatchObject({ verified: true, latency: 'nbdkit-delay' });
  });

  it('run --remote says that nbdkit-delay cells start their own server, and they still run and verify', (ctx) => {
    if (NO_NBDKIT) skipBecause(ctx, NO_NBDKIT);
    const matrix = join(dir, 'own-server.json');
    writeFileSync(
      matrix,
      JSON.stringify({
        name: 'own-server',
        description: 'one nbdkit-delay cell',
        groups: [{ name: 'ext', scenario: 'first-chunk', strategy: 'uffd', source: 'remote', rtt: 1, latency: 'nbdkit-delay', region: '256KiB', repeat: 1 }],
      }),
    );
    const r = faultlab(['run', '--matrix', matrix, '--out', join(dir, 'own-server-runs'), '--remote', servers.read!], {}, 60_000);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/--remote \S+ serves no nbdkit-delay or netem cell: those 1 start their own server/);
    expect(r.stdout).toMatch(/complete; 0 failed cell/);
  });

  it('bad combinations are refused with one line', () => {
    const r = faultlab(['bench', '--strategy', 'uffd', '--source', 'remote', '--rtt', '0.5', '--latency', 'nbdkit-delay', '--region', '1MiB']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe("faultlab: --latency nbdkit-delay takes whole ms (nbdkit's delay filter counts in ms), not --rtt 0.5");
    const remote = faultlab([
      'bench',
      '--strategy',
      'uffd',
      '--source',
      'remote',
      '--remote',
      'nbd://127.0.0.1:1',
      '--latency',
      'nbdkit-delay',
      '--region',
      '1MiB',
    ]);
    expect(remote.status).toBe(2);
    expect(remote.stderr.trim()).toBe('faultlab: --latency nbdkit-delay needs --source remote and no --remote (it starts its own nbdkit)');
  });

  it('without nbdkit, bench and run refuse with one line naming the package', () => {
    const env = { PATH: '/nonexistent' };
    const b = faultlab(['bench', '--strategy', 'uffd', '--source', 'remote', '--latency', 'nbdkit-delay', '--region', '1MiB'], env);
    expect(b.status).toBe(2);
    expect(b.stderr.trim()).toBe('faultlab: --latency nbdkit-delay: nbdkit is not installed (apt-get install nbdkit)');
    const r = faultlab(['run', '--matrix', 'latency-methods', '--out', join(dir, 'runs')], env);
    expect(r.status).toBe(2);
    expect(r.stderr.trim()).toBe(
      "faultlab: matrix 'latency-methods': 30 cell(s) use latency nbdkit-delay, but nbdkit is not installed (apt-get install nbdkit)",
    );
  });

  it('a matrix latency axis: only cells that set it get a new id; --filter latency= selects', () => {
    const r = faultlab(['run', '--matrix', 'latency-methods', '--list', '--filter', 'latency=nbdkit-delay']);
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines).toHaveLength(30);
    for (const l of lines) expect(l).toMatch(/"latency":"nbdkit-delay"/);
    const all = faultlab(['run', '--matrix', 'latency-methods', '--list']).stdout.trim().split('\n');
    expect(new Set(all.map((l) => l.split(' ')[0])).size).toBe(60);
  });
});
