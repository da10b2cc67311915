// env.json, written by the runner beside runs.csv. Only run_id is needed; every
// other key may be missing (older runs, partial doctor output) and shows as "not recorded".
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface RunEnv {
  run_id?: string;
  matrix?: string;
  started?: string;
  finished?: string;
  complete?: boolean;
  kernel?: string;
  /** /proc/cmdline up to any ` -- ` (runs from 49004f1 on): boot options such as mitigations and a hypervisor's. */
  kernel_cmdline?: string | null;
  cpu_model?: string;
  cpus?: number;
  node?: string;
  commit?: string;
  uffd_path?: string;
  uffd_features?: string[];
  privileges?: string;
  doctor?: Record<string, unknown>;
  latency?: string;
  /** `faultlab study`'s runs: the study folder, and whether --allow-dirty let it run from a dirty tree. */
  study?: { folder?: string; commit?: string; quick?: boolean; allow_dirty?: boolean };
  /** harness/env.ts judgeVirtualization (runs from issue 21 on). */
  virtualization?: { virtualized?: boolean; reasons?: string[]; minor_fault_ns?: number | null; syscall_ns?: number | null };
}

export function loadEnv(inDir: string): RunEnv {
  const file = join(inDir, 'env.json');
  if (!existsSync(file)) throw new Error(`${file} not found: the paper's set-up section needs the run's environment`);
  let env: unknown;
  try {
    env = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new Error(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof env !== 'object' || env === null || Array.isArray(env)) throw new Error(`${file}: expected a JSON object`);
  return env as RunEnv;
}
