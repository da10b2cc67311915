// Runs one cell: fresh regions, one per repetition, each workload timed in C.
// first-chunk repetitions are driven by tinybench, which gets the C-timed
// latency of each iteration (overriddenDuration) and supplies the statistics.
import { Bench } from 'tinybench';
import { NativeRegion, rttProbeNative } from './native.js';
import { regionSpec, runSpec, validateCell } from './cell.js';
import { usesSource, type CellParams } from './params.js';
import type { Row } from './columns.js';
import { NbdServer, serverRttUs } from './server/nbd-server.js';
import { parseRemote, type RemoteTarget } from './remote.js';
import { writeTrackReps } from './write-track.js';
import { migrateReps } from './migrate.js';
import { startNetemRemote } from './netem.js';
import { startNbdkitDelay } from './nbdkit.js';

export interface CellResult {
  /** Medians over repetitions (numbers), all-true for verified. */
  summary: Row;
  reps: Row[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Medians of numeric keys; booleans must hold in every repetition; strings from the first. */
export function summarize(reps: Row[]): Row {
  const out: Row = {};
  for (const k of Object.keys(reps[0] ?? {})) {
    const vals = reps.map((r) => r[k]);
    if (vals.every((v) => typeof v === 'number')) out[k] = median(vals as number[]);
    else if (vals.every((v) => typeof v === 'boolean')) out[k] = vals.every(Boolean);
    else out[k] = vals[0];
  }
  return out;
}

async function withRemote<T>(p: CellParams, fn: (remote?: RemoteTarget) => Promise<T>): Promise<T> {
  if (p.source !== 'remote' || !usesSource(p.strategy)) return fn(undefined);
  if (p.remote) return fn(parseRemote(p.remote));
  if (p.latency === 'nbdkit-delay') {
    const nbdkit = await startNbdkitDelay({ rttMs: p.rttMs, regionBytes: p.regionBytes, seed: p.seed });
    try {
      return await fn({ host: nbdkit.host, port: nbdkit.port });
    } finally {
      await nbdkit.close();
    }
  }
  if (p.latency === 'netem') {
    const link = await startNetemRemote({ rttMs: p.rttMs, regionBytes: p.regionBytes, seed: p.seed });
    try {
      return await fn({ host: link.host, port: link.port });
    } finally {
      await link.close();
    }
  }
  // No --remote: an embedded server on loopback, so `--source remote` needs no set-up
  // (answering at once under client-delay: the client holds the answers).
  // A C server on its own threads: nothing to warm up.
  const server = NbdServer.start({ regionBytes: p.regionBytes, seed: p.seed, rttUs: serverRttUs(p.latency, p.rttMs) });
  try {
    return await fn({ host: server.host, port: server.port });
  } finally {
    server.stop();
  }
}

function nativeRow(r: Record<string, unknown>): Row {
  const row: Row = {};
  for (const [k, v] of Object.entries(r)) row[k] = v as Row[string];
  return row;
}

/** A running repetition's progress: accesses done and planned, seconds since it started. */
export type ProgressFn = (p: { repetition: number; repeat: number; done: number; planned: number; seconds: number }) => void;

/** How often a long run reports its progress (the first report comes after one period). */
export const PROGRESS_EVERY_MS = 2000;

async function runOnce(spec: string, runSpec: string, progress?: (done: number, planned: number, seconds: number) => void): Promise<Row> {
  const region = await NativeRegion.create(spec);
  const t0 = performance.now();
  // Polls counters the workload threads store as they go: nothing in the timed path waits on it.
  const timer =
    progress &&
    setInterval(() => {
      const { done, planned } = region.progress();
      if (planned) progress(done, planned, (performance.now() - t0) / 1000);
    }, PROGRESS_EVERY_MS);
  try {
    return nativeRow(await region.run(runSpec));
  } finally {
    if (timer) clearInterval(timer);
    region.destroy();
  }
}

/** first-chunk: tinybench repeats fresh-region first accesses. */
async function firstChunkReps(p: CellParams, spec: string): Promise<{ reps: Row[]; stats: Row }> {
  const reps: Row[] = [];
  const current: { region: NativeRegion | null } = { region: null };
  let failure: Error | null = null;
  const bench = new Bench({ iterations: p.repeat, time: 0, warmup: false, throws: true, retainSamples: false });
  bench.add(
    'first-chunk',
    async () => {
      const r = nativeRow(await current.region!.run(`workload=first-chunk seed=${p.seed}`));
      reps.push(r);
      return { overriddenDuration: Number(r.first_access_ns) / 1e6 };
    },
    {
      async beforeEach() {
        current.region = await NativeRegion.create(spec);
      },
      afterEach() {
        current.region?.destroy();
        current.region = null;
      },
    },
  );
  try {
    await bench.run();
  } catch (e) {
    failure = e as Error;
  }
  current.region?.destroy();
  const task = bench.tasks[0];
  const res = task?.result as { state: string; error?: Error; latency?: { mean: number; p99: number; rme: number; samplesCount: number } } | undefined;
  if (failure || !res || res.state === 'errored') throw failure ?? res?.error ?? new Error('first-chunk benchmark did not run');
  const lat = res.latency!;
  return {
    reps,
    stats: {
      bench_mean_ns: Math.round(lat.mean * 1e6),
      bench_p99_ns: Math.round(lat.p99 * 1e6),
      bench_rme_pct: Number(lat.rme.toFixed(3)),
      bench_samples: lat.samplesCount,
    },
  };
}

/** One cell. `progress`: called every PROGRESS_EVERY_MS while a read workload runs. */
export async function runCell(params: CellParams, progress?: ProgressFn): Promise<CellResult> {
  const p = validateCell(params);
  return withRemote(p, async (remote) => {
    // Measured RTT next to the configured one: median of empty round trips timed
    // by the strategies' own C client. Each bounded by the fetch timeout: a server
    // that never answers fails the cell as fast as a stalled fetch.
    const target = remote && { ...remote, regionBytes: p.regionBytes, seed: p.seed, clientRttMs: p.latency === 'client-delay' ? p.rttMs : 0 };
    const rtt = target ? await rttProbeNative(target, p.rttMs >= 10 ? 5 : 20, p.fetchTimeoutMs + Math.ceil(p.rttMs)) : null;
    const spec = regionSpec(p, remote);
    let reps: Row[];
    let stats: Row = { bench_mean_ns: null, bench_p99_ns: null, bench_rme_pct: null, bench_samples: null };
    if (p.scenario === 'first-chunk') {
      ({ reps, stats } = await firstChunkReps(p, spec));
    } else if (p.scenario === 'write-track' || p.scenario === 'migrate') {
      reps = p.scenario === 'write-track' ? await writeTrackReps(p, spec) : await migrateReps(p, spec);
    } else {
      reps = [];
      for (let i = 0; i < p.repeat; i++)
        reps.push(
          await runOnce(spec, runSpec(p), progress && ((done, planned, seconds) => progress({ repetition: i, repeat: p.repeat, done, planned, seconds }))),
        );
    }
    const common: Row = {
      source: usesSource(p.strategy) ? p.source : 'none',
      rtt_ms: p.rttMs,
      rtt_measured_ms: rtt ? Number(rtt.medianMs.toFixed(4)) : null,
      latency: !remote ? 'none' : p.latency === 'client-delay' ? 'client-delay' : p.remote ? 'external' : (p.latency ?? 'server-delay'),
      repeat: p.repeat,
    };
    reps = reps.map((r, i) => ({ ...r, ...common, ...stats, repetition: i }));
    return { summary: { ...summarize(reps), ...common, ...stats }, reps };
  });
}
