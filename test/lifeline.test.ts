// Nothing outlives its parent: a runner killed with SIGKILL takes its cell
// child with it; a netem run killed with SIGKILL takes its server with it, and
// the next netem run (or `doctor --clean`) removes the namespace it left.
import { describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CLI, faultlab } from './helpers.js';
import { skipBecause } from './skip.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function alive(pid: number): boolean {
  try {
    // A zombie has not been reaped yet but runs no more.
    return !/\) Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Child PIDs of a process, from /proc. */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

async function waitFor<T>(what: string, get: () => T | undefined | false, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function goneWithin(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (!alive(pid)) return true;
    await sleep(10);
  }
  return !alive(pid);
}

const start = (args: string[]): ChildProcess => spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
const namespaces = () => execFileSync('ip', ['netns', 'list']).toString();
const isRoot = process.getuid?.() === 0;

describe('children die with their parent', () => {
  it('a runner killed with SIGKILL: its cell child is gone within a second', async () => {
    // A local cell that runs for many seconds on its own (no server whose loss would end it).
    const dir = mkdtempSync(join(tmpdir(), 'faultlab-lifeline-'));
    const matrix = join(dir, 'long.json');
    writeFileSync(
      matrix,
      JSON.stringify({ name: 'long', groups: [{ name: 'long', scenario: 'read-seq', strategy: 'uffd', source: 'local', region: '64MiB', repeat: 200 }] }),
    );
    const runner = start(['run', '--matrix', matrix, '--out', dir, '--run-id', 'killed']);
    try {
      const cell = await waitFor('the cell child', () => childrenOf(runner.pid!)[0], 30_000);
      await sleep(300); // into its native run
      runner.kill('SIGKILL');
      expect(await goneWithin(cell, 1000), `cell child ${cell} still running 1 s after its runner was killed`).toBe(true);
    } finally {
      runner.kill('SIGKILL');
    }
  });

  it('a netem run killed with SIGKILL: its server dies with it, and the next netem run removes its namespace', async (ctx) => {
    if (!isRoot) skipBecause(ctx, 'needs root (network namespaces)');
    const bench = start([
      'bench',
      '--strategy',
      'uffd',
      '--source',
      'remote',
      '--latency',
      'netem',
      '--rtt',
      '0',
      '--region',
      '256MiB',
      '--repeat',
      '20',
      '--json',
    ]);
    const ns = `faultlab-${bench.pid}`;
    try {
      const server = await waitFor(
        'the server inside the namespace',
        () => {
          if (!namespaces().includes(ns)) return undefined;
          const pids = execFileSync('ip', ['netns', 'pids', ns]).toString().split('\n').filter(Boolean).map(Number);
          return pids[0];
        },
        30_000,
      );
      bench.kill('SIGKILL');
      expect(await goneWithin(server, 1000), `server ${server} in ${ns} still running 1 s after its parent was killed`).toBe(true);
      expect(namespaces()).toContain(ns); // left behind by a SIGKILL: nothing could run
      const next = faultlab(['bench', '--strategy', 'sigsegv', '--source', 'remote', '--latency', 'netem', '--rtt', '0', '--region', '1MiB', '--json']);
      expect(next.status, next.stderr).toBe(0);
      expect(namespaces()).not.toContain(ns);
      expect(execFileSync('ip', ['link', 'show']).toString()).not.toContain(`flh${bench.pid}`);
    } finally {
      bench.kill('SIGKILL');
    }
  });

  it("doctor --clean removes a dead owner's namespace and keeps a live one's", (ctx) => {
    if (!isRoot) skipBecause(ctx, 'needs root (network namespaces)');
    // PIDs above the kernel's pid_max never run; this process is alive.
    const dead = `faultlab-${4194304 + 1}`;
    const live = `faultlab-${process.pid}`;
    execFileSync('ip', ['netns', 'add', dead]);
    execFileSync('ip', ['netns', 'add', live]);
    try {
      const r = faultlab(['doctor', '--clean']);
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(dead);
      expect(namespaces()).not.toContain(dead);
      expect(namespaces()).toContain(live);
      const again = faultlab(['doctor', '--clean']);
      expect(again.stdout).toMatch(/nothing left behind/);
    } finally {
      for (const n of [dead, live]) {
        try {
          execFileSync('ip', ['netns', 'del', n], { stdio: 'pipe' });
        } catch {
          /* removed by the test */
        }
      }
    }
  });

  it('a zombie owner is dead: a netem run killed with SIGKILL and not yet reaped leaves a stale namespace', async (ctx) => {
    if (!isRoot) skipBecause(ctx, 'needs root (network namespaces)');
    // sh starts a short child, then becomes a sleep that never reaps it: a zombie.
    const parent = spawn('sh', ['-c', 'sleep 0.01 & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const zombie = await new Promise<number>((resolve) => parent.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
    const ns = `faultlab-${zombie}`;
    try {
      await waitFor('the zombie', () => (/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${zombie}/stat`, 'utf8')) ? true : undefined), 5000);
      execFileSync('ip', ['netns', 'add', ns]);
      const r = faultlab(['doctor', '--clean']);
      expect(r.status, r.stderr).toBe(0);
      expect(namespaces()).not.toContain(ns);
    } finally {
      parent.kill('SIGKILL');
      try {
        execFileSync('ip', ['netns', 'del', ns], { stdio: 'pipe' });
      } catch {
        /* removed by the test */
      }
    }
  });
});
