// Issue 19's targets: a region larger than this machine's memory (32 GiB by
// default) read sequentially through a bounded resident set (1 GiB), from an
// NBD server whose contents are procedural (it costs the server nothing).
// Each read runs in a child process of its own (`faultlab bench`), so its peak
// RSS is its own: VmHWM of /proc/PID/status, sampled every 100 ms while it
// runs (the kernel keeps the peak, so the last sample before exit misses at
// most what grew in the last 100 ms). Beside it, in the same round, the same
// read of a region the size of the limit, without a limit: the throughput
// floor the limited read is compared with, each with its set-up counted.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { childEnv } from './lifeline.js';
import { formatSize } from './sizes.js';
import type { Series } from './targets.js';

const cliPath = fileURLToPath(new URL('../../bin/faultlab.js', import.meta.url));

interface ChildResult {
  row: Record<string, unknown>;
  hwmBytes: number;
  seconds: number;
}

function vmHwm(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null; /* exited */
  }
}

/** One `faultlab bench --json` in a child process: its last JSON line and its peak RSS. */
function benchChild(args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [cliPath, 'bench', ...args, '--json', '--no-progress'], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    let stdout = '';
    let stderr = '';
    let hwm = 0;
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setInterval(() => (hwm = Math.max(hwm, vmHwm(child.pid!) ?? 0)), 100);
    child.on('error', (e) => {
      clearInterval(timer);
      reject(e);
    });
    child.on('close', (code) => {
      clearInterval(timer);
      const last = stdout.trim().split('\n').at(-1) ?? '';
      if (code !== 0) return reject(new Error(`bench ${args.join(' ')} exited ${code}: ${stderr.trim().split('\n').at(-1) ?? ''}`));
      try {
        resolve({ row: JSON.parse(last), hwmBytes: hwm, seconds: (Date.now() - t0) / 1000 });
      } catch {
        reject(new Error(`bench ${args.join(' ')} printed no JSON`));
      }
    });
  });
}

export async function residentBenchmark(
  rounds: number,
  regionBytes: number,
  limitBytes: number,
  log: (s: string) => void,
  opts: { strategies?: readonly string[]; chunk?: string } = {},
): Promise<Series[]> {
  const s: Record<string, number[]> = {};
  const push = (k: string, v: number) => (s[k] ??= []).push(v);
  const big = formatSize(regionBytes);
  const lim = formatSize(limitBytes);
  const common = ['--scenario', 'read-seq', '--source', 'remote', '--chunk', opts.chunk ?? '1MiB', '--cpus', 'free'];
  for (let i = 0; i < rounds; i++) {
    for (const strategy of opts.strategies ?? ['uffd', 'sigsegv']) {
      const floor = await benchChild(['--strategy', strategy, ...common, '--region', `${limitBytes}`]);
      const limited = await benchChild(['--strategy', strategy, ...common, '--region', `${regionBytes}`, '--resident-limit', `${limitBytes}`]);
      for (const [what, r] of [
        ['floor', floor],
        ['limited', limited],
      ] as const)
        if (r.row.verified !== true) throw new Error(`${strategy} ${what} read did not verify`);
      const t0 = Number(floor.row.throughput_mibps);
      const t1 = Number(limited.row.throughput_mibps);
      // The target counts each read's set-up too: sigsegv pre-populates an
      // unlimited region's page tables before the timed window (setup_ns), a
      // step no region larger than memory can take up front.
      const withSetup = (r: ChildResult, bytes: number) => bytes / 2 ** 20 / (bytes / 2 ** 20 / Number(r.row.throughput_mibps) + Number(r.row.setup_ns) / 1e9);
      const s0 = withSetup(floor, limitBytes);
      const s1 = withSetup(limited, regionBytes);
      push(`${strategy} ${big} through ${lim} (MiB/s)`, t1);
      push(`${strategy} ${lim}, no limit (MiB/s)`, t0);
      push(`${strategy} limited / no limit, timed window only`, t1 / t0);
      push(`${strategy} ${lim}, no limit, set-up included (MiB/s)`, s0);
      push(`${strategy} limited / no limit, set-up included`, s1 / s0);
      push(`${strategy} peak RSS - limit (MiB)`, (limited.hwmBytes - limitBytes) / 2 ** 20);
      push(`${strategy} max_resident_bytes / limit`, Number(limited.row.max_resident_bytes) / limitBytes);
      push(`${strategy} ${big} read wall time (s)`, limited.seconds);
      log(
        `round ${i + 1}/${rounds} ${strategy}: ${big} through ${lim} ${t1.toFixed(0)} MiB/s in ${limited.seconds.toFixed(0)} s ` +
          `(peak RSS ${(limited.hwmBytes / 2 ** 20).toFixed(0)} MiB, ${limited.row.evictions} evictions); ${lim} without a limit ${t0.toFixed(0)} MiB/s ` +
          `(peak RSS ${(floor.hwmBytes / 2 ** 20).toFixed(0)} MiB)`,
      );
    }
  }
  return Object.entries(s).map(([name, values]) => ({ name, values }));
}
