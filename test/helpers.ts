// Running the built CLI as a user would.
import { spawnSync, SpawnSyncReturns } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const CLI = fileURLToPath(new URL('../bin/faultlab.js', import.meta.url));

export function faultlab(args: string[], env: Record<string, string> = {}, timeoutMs = 120_000): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, ...env } });
}

/** The JSON object a --json command prints as its last line. */
export function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

/** Whether this kernel offers UFFDIO_MOVE (Linux 6.8+), from `faultlab doctor`. */
export function kernelHasUffdMove(): boolean {
  const r = faultlab(['doctor', '--json']);
  const api = (lastJson(r.stdout).uffd_api ?? {}) as { features?: string[] };
  return (api.features ?? []).includes('MOVE');
}
