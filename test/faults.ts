// Helpers for the reliability tests: the misbehaving chunk server
// (test/fault-server.ts) as a child process, and the /proc checks for
// processes left behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FaultMode } from './fault-server.js';

export type { FaultMode };
export const FAULT_SERVER = fileURLToPath(new URL('./fault-server.ts', import.meta.url));

export interface FaultServer {
  port: number;
  address: string;
  proc: ChildProcess;
  /** Resolves when the server process has exited (with its signal, e.g. SIGKILL for `die`). */
  exited: Promise<NodeJS.Signals | null>;
  close(): Promise<void>;
}

/** Start test/fault-server.ts; resolves once it listens. */
export function startFaultServer(mode: FaultMode, opts: { after?: number; region?: number; seed?: number } = {}): Promise<FaultServer> {
  const args = [
    '--import',
    'tsx',
    FAULT_SERVER,
    '--mode',
    mode,
    '--after',
    String(opts.after ?? 8),
    '--region',
    String(opts.region ?? 1 << 20),
    '--seed',
    String(opts.seed ?? 1),
  ];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => proc.once('exit', (_code, signal) => resolve(signal)));
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`fault server (${mode}) did not start within 20 s`));
    }, 20_000);
    const early = (code: number | null) => {
      clearTimeout(timer);
      reject(new Error(`fault server (${mode}) exited with ${code} before listening`));
    };
    proc.once('exit', early);
    proc.stdout!.on('data', (d) => {
      out += d;
      const m = /listening (\d+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      proc.off('exit', early);
      const port = Number(m[1]);
      resolve({
        port,
        address: `127.0.0.1:${port}`,
        proc,
        exited,
        async close() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
          await exited;
        },
      });
    });
  });
}

/** Processes (other than this one) whose command line contains every marker. */
export function processesWith(...markers: string[]): { pid: number; cmdline: string }[] {
  const found: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
    } catch {
      continue; // exited meanwhile
    }
    if (markers.every((m) => cmdline.includes(m))) found.push({ pid: Number(name), cmdline });
  }
  return found;
}
