// `--latency netem`: the remote behind a real (virtual) link whose delay the
// kernel adds. The harness makes a network namespace with a veth pair to it,
// puts `tc qdisc netem delay rtt/2` on both ends, and runs `faultlab serve`
// inside. Where the kernel has no netem it refuses with the probe's reason.
import { execFileSync, spawn, ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { UsageError } from './errors.js';
import { probeNetem } from './env.js';
import { childEnv } from './lifeline.js';

const cli = fileURLToPath(new URL('../../bin/faultlab.js', import.meta.url));

export interface NetemRemote {
  host: string;
  port: number;
  close(): Promise<void>;
}

function sh(args: string[]): void {
  execFileSync(args[0], args.slice(1), { stdio: 'pipe', timeout: 10_000 });
}

function shError(e: unknown): string {
  const err = e as { stderr?: Buffer; message?: string };
  return (err.stderr?.toString().trim() || err.message || String(e)).split('\n')[0];
}

const OURS = /^faultlab-(\d+)$/;

/** Whether pid still runs. A zombie does not: a netem run killed with
 * SIGKILL stays one until its parent reaps it, and its namespace is stale. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    // /proc/PID/stat: "pid (comm) state ...", comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false; /* gone since kill(pid, 0) */
  }
}

/**
 * Remove what netem runs of dead processes left behind: each namespace is
 * named after its owner's PID (faultlab-PID); where that process is gone, the
 * processes still inside are killed and the namespace deleted, which also
 * removes its veth pair. Returns the namespaces removed.
 */
export function cleanStaleNetem(): string[] {
  let list = '';
  try {
    list = execFileSync('ip', ['netns', 'list'], { stdio: 'pipe', timeout: 10_000 }).toString();
  } catch {
    return []; // no ip(8) or no right to list: nothing of ours can exist
  }
  const removed: string[] = [];
  for (const name of list.split('\n').map((l) => l.split(' ')[0])) {
    const m = OURS.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    try {
      const pids = execFileSync('ip', ['netns', 'pids', name], { stdio: 'pipe', timeout: 10_000 }).toString().split('\n').filter(Boolean);
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      sh(['ip', 'netns', 'del', name]);
      removed.push(name);
    } catch (e) {
      console.error(`faultlab: cannot remove the stale namespace ${name}: ${shError(e)}`);
    }
  }
  return removed;
}

export async function startNetemRemote(o: { rttMs: number; regionBytes: number; seed: number }): Promise<NetemRemote> {
  if (o.rttMs > 0) {
    const probe = probeNetem();
    if (!probe.available) throw new UsageError(`--latency netem: ${probe.detail}; this kernel cannot add link delay, use --latency server-delay (the default)`);
  }
  cleanStaleNetem();
  // Names and a /30 unique to this process, carrying its PID: the namespace is
  // ours alone, and a later run can tell whether its owner is still alive.
  const ns = `faultlab-${process.pid}`;
  const [hostIf, nsIf] = [`flh${process.pid}`, `fln${process.pid}`];
  const subnet = `10.213.${(process.pid >> 6) & 255}.${(process.pid & 63) * 4}`;
  const base = subnet.split('.').map(Number);
  const hostAddr = `${base[0]}.${base[1]}.${base[2]}.${base[3] + 1}`;
  const nsAddr = `${base[0]}.${base[1]}.${base[2]}.${base[3] + 2}`;
  const cleanup = () => {
    try {
      sh(['ip', 'netns', 'del', ns]); // also removes the veth pair
    } catch {
      /* never created */
    }
  };
  let server: ChildProcess | null = null;
  try {
    sh(['ip', 'netns', 'add', ns]);
    sh(['ip', 'link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    sh(['ip', 'link', 'set', nsIf, 'netns', ns]);
    sh(['ip', 'addr', 'add', `${hostAddr}/30`, 'dev', hostIf]);
    sh(['ip', 'link', 'set', hostIf, 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'addr', 'add', `${nsAddr}/30`, 'dev', nsIf]);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
    sh(['ip', 'netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    if (o.rttMs > 0) {
      const half = `${(o.rttMs / 2).toFixed(3)}ms`;
      sh(['tc', 'qdisc', 'add', 'dev', hostIf, 'root', 'netem', 'delay', half]);
      sh(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'add', 'dev', nsIf, 'root', 'netem', 'delay', half]);
    }
  } catch (e) {
    cleanup();
    throw new Error(`--latency netem: cannot set up the namespace link: ${shError(e)}`);
  }
  const port = 7070;
  server = spawn(
    'ip',
    [
      'netns',
      'exec',
      ns,
      process.execPath,
      cli,
      'serve',
      '--allow-remote', // the namespace's own veth address, reachable from this machine only
      '--listen',
      `${nsAddr}:${port}`,
      '--region',
      String(o.regionBytes),
      '--seed',
      String(o.seed),
      '--rtt',
      '0',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() },
  );
  const ready = await new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), 15_000);
    server!.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening on')) {
        clearTimeout(timer);
        resolve(true);
      }
    });
    server!.on('exit', () => resolve(false));
  });
  if (!ready) {
    server.kill('SIGKILL');
    cleanup();
    throw new Error('--latency netem: the NBD server in the namespace did not start');
  }
  return {
    host: nsAddr,
    port,
    close: async () => {
      const exited = new Promise((r) => server!.once('exit', r));
      server!.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 3000))]);
      if (server!.exitCode === null) server!.kill('SIGKILL');
      cleanup();
    },
  };
}
