// Nothing the harness starts outlives it. A child faultlab process (a matrix
// cell, a migration half, a server inside a netem namespace) is spawned with
// childEnv(), and calls dieWithParent() first thing: the kernel then sends it
// SIGKILL when its parent dies (PR_SET_PDEATHSIG), whatever the child is doing,
// even blocked in native code where no event loop would notice a closed pipe.
import koffi from 'koffi';

const PARENT_ENV = 'FAULTLAB_PARENT_PID';
const PR_SET_PDEATHSIG = 1;
const SIGKILL = 9;

/** The environment for a child that should die with this process. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, ...extra, [PARENT_ENV]: String(process.pid) };
}

/** In a child spawned with childEnv(): die when the parent does. */
export function dieWithParent(): void {
  const parent = Number(process.env[PARENT_ENV]);
  // Only this process: its own children get the variable from childEnv() or not at all.
  delete process.env[PARENT_ENV];
  if (!parent) return;
  const prctl = koffi.load('libc.so.6').func('int prctl(int option, unsigned long arg2, unsigned long arg3, unsigned long arg4, unsigned long arg5)');
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) !== 0) throw new Error('prctl(PR_SET_PDEATHSIG) failed');
  // The parent may have died before the request took effect.
  if (process.ppid !== parent) process.kill(process.pid, 'SIGKILL');
}
