// The migrate scenario: two real processes and real sockets. The source
// process writes while its pre-copy rounds push dirty chunks to the chunk
// server (the destination's store), each round one pipelined batch, until the
// rest would fit the downtime limit (or max rounds); at cut-over it stops and
// pushes the rest. The destination process, which had already mapped the
// region with a pull strategy (uffd or sigsegv) and connected its threads, is
// then told to go: it serves the application's accesses on demand while its
// prefetch policy (--dest-prefetch, background by default; none: background
// threads touching every chunk) pulls the rest, and compares the result with the source's final
// state. This process only relays the cut-over (the source's C code writes a
// line to its stdout, this process writes one to the destination's stdin,
// whose C code reads it) and joins the two reports; both use CLOCK_MONOTONIC,
// which every process of the machine shares.
import { spawn, ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { childEnv } from './lifeline.js';
import type { CellParams } from './params.js';
import type { Row } from './columns.js';
import { serverRttUs } from './server/nbd-server.js';

export const MIGRATE_DEFAULTS = {
  mode: 'precopy',
  postcopyAfter: 1,
  pattern: 'hot',
  writeFraction: 0.01,
  tracker: 'uffd-wp',
  bgThreads: 2,
  downtimeLimitMs: 300, // QEMU's default downtime-limit
  maxRounds: 8,
  destPrefetch: 'background',
} as const;

const here = fileURLToPath(import.meta.url);
// From dist/ the child is compiled JS; from the sources (vitest, tsx) it runs through tsx.
const childArgs = here.endsWith('.ts')
  ? ['--import', 'tsx', here.replace(/migrate\.ts$/, 'migrate-child.ts')]
  : [here.replace(/migrate\.js$/, 'migrate-child.js')];

interface Child {
  proc: ChildProcess;
  closed: Promise<void>;
  next(): Promise<Record<string, unknown>>;
}

function startChild(role: string, ...args: string[]): Child {
  const proc = spawn(process.execPath, [...childArgs, role, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: childEnv() });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const queue: string[] = [];
  const waiting: ((l: string | null) => void)[] = [];
  const lines = createInterface({ input: proc.stdout! });
  lines.on('line', (l) => (waiting.length ? waiting.shift()!(l) : queue.push(l)));
  const closed = new Promise<void>((resolve) => proc.on('close', () => resolve()));
  closed.then(() => waiting.splice(0).forEach((w) => w(null)));
  return {
    proc,
    closed,
    async next() {
      const line = queue.length
        ? queue.shift()!
        : await new Promise<string | null>((resolve) => (proc.exitCode !== null || proc.signalCode ? resolve(null) : waiting.push(resolve)));
      if (line === null) {
        await closed;
        const why = stderr.trim().split('\n').pop() || `exited with ${proc.signalCode ?? `code ${proc.exitCode}`}`;
        throw new Error(`migrate ${role} process: ${why}`);
      }
      const j = JSON.parse(line) as Record<string, unknown>;
      if (typeof j.error === 'string') throw new Error(`migrate ${role}: ${j.error}`);
      return j;
    },
  };
}

const writerKeys = (p: CellParams) => `pattern=${p.pattern ?? MIGRATE_DEFAULTS.pattern} write_fraction=${p.writeFraction ?? MIGRATE_DEFAULTS.writeFraction}`;

async function migrateOnce(p: CellParams, regionSpec: string): Promise<Row> {
  const mode = p.migrateMode ?? MIGRATE_DEFAULTS.mode;
  const destPrefetch = p.destPrefetch ?? MIGRATE_DEFAULTS.destPrefetch;
  const tracker = p.tracker ?? MIGRATE_DEFAULTS.tracker;
  const stopRule =
    `mode=${mode} postcopy_after=${p.postcopyAfter ?? MIGRATE_DEFAULTS.postcopyAfter} ` +
    `downtime_limit_ms=${p.downtimeLimitMs ?? MIGRATE_DEFAULTS.downtimeLimitMs} max_rounds=${p.maxRounds ?? MIGRATE_DEFAULTS.maxRounds}`;
  // Post-copy and hybrid: the source serves its own memory, answers held the
  // RTT as the chunk server holds its (client-delay: the destination's client holds them).
  const serveRtt = serverRttUs(p.latency, p.rttMs);
  const destChild = (spec: string) => startChild('dest', `${spec} prefetch=${destPrefetch}`, `${writerKeys(p)} bg_threads=${MIGRATE_DEFAULTS.bgThreads}`);
  let dest: Child | null = null;
  let src: Child | null = null;
  try {
    const srcSpec = `${regionSpec} tracker=${tracker} ${writerKeys(p)} ${stopRule} serve_rtt_us=${serveRtt}`;
    if (mode === 'precopy') {
      dest = destChild(regionSpec);
      await dest.next(); // mapped, threads up, connected: its start-up is not downtime
      src = startChild('source', srcSpec);
    } else {
      // The source first: the destination's region pulls from its server.
      src = startChild('source', srcSpec);
      const { serving } = await src.next();
      dest = destChild(regionSpec.replace(/\bhost=\S+ port=\d+( export=\S+)?/, `host=127.0.0.1 port=${serving}$1`));
      await dest.next();
      src.proc.stdin!.write('start\n');
    }
    const s = await src.next();
    dest.proc.stdin!.write(`intervals=${s.intervals_written}\n`); // the cut-over
    const d = await dest.next();
    if (mode !== 'precopy') src.proc.stdin!.write('done\n'); // the source may stop serving
    // Let both exit on their own (unmapping, closing sockets) before the next repetition.
    await Promise.race([Promise.all([dest.closed, src.closed]), new Promise((r) => setTimeout(r, 10_000).unref())]);
    const n = (k: string, o: Record<string, unknown>) => Number(o[k]);
    return {
      strategy: p.strategy,
      scenario: 'migrate',
      tracker,
      pattern: s.pattern as string,
      write_fraction: s.write_fraction as number,
      write_bytes: s.write_bytes as number,
      region_bytes: p.regionBytes,
      chunk_bytes: p.chunkBytes,
      cpus: p.cpus,
      handler_threads: p.handlerThreads,
      bg_threads: d.bg_threads as number,
      migrate_mode: mode,
      postcopy_after: mode === 'hybrid' ? n('postcopy_after', s) : null,
      dest_prefetch: d.dest_prefetch as string,
      downtime_limit_ms: n('downtime_limit_ms', s),
      max_rounds: n('max_rounds', s),
      migration_ns: n('t_all_present_ns', d) - n('t_start_ns', s),
      downtime_ns: n('t_first_served_ns', d) - n('t_stop_ns', s),
      precopy_ns: n('precopy_ns', s),
      final_push_ns: n('final_push_ns', s),
      resume_ns: n('t_first_served_ns', d) - n('t_cutover_ns', s),
      relay_ns: n('t_go_ns', d) - n('t_cutover_ns', s),
      pull_ns: n('pull_ns', d),
      total_ns: n('t_all_present_ns', d) - n('t_start_ns', s),
      first_access_ns: n('first_access_ns', d),
      fault_ns_p50: n('access_ns_p50', d),
      fault_ns_p99: n('access_ns_p99', d),
      fault_ns_max: n('access_ns_max', d),
      precopy_rounds: n('precopy_rounds', s),
      round_dirty_chunks: s.round_dirty_chunks as string,
      round_push_ns: s.round_push_ns as string,
      round_collect_ns: s.round_collect_ns as string,
      stop_reason: s.stop_reason as string,
      push_bytes_per_s: n('push_bytes_per_s', s),
      dirty_bytes_per_s: n('dirty_bytes_per_s', s),
      expected_downtime_ns: n('expected_downtime_ns', s),
      push_rtt_ns: n('rtt_ns', s),
      push_requests: n('push_requests', s),
      final_dirty_chunks: n('final_dirty_chunks', s),
      intervals_written: n('intervals_written', s),
      writes: n('writes', s),
      bytes_pushed: n('bytes_pushed', s),
      bytes_fetched: n('bytes_fetched', d),
      bytes_moved: n('bytes_pushed', s) + n('bytes_fetched', d),
      faults: n('faults', d),
      network_faults: n('network_faults', d),
      // Post-copy's pull from the source (null in pre-copy, which pulls from the store).
      postcopy_faults: mode === 'precopy' ? null : n('network_faults', d),
      postcopy_ns: mode === 'precopy' ? null : n('pull_ns', d),
      prefetched: n('prefetched', d),
      prefetch_requests: n('prefetch_requests', d),
      tracker_faults: n('tracker_faults', s),
      verified: d.verified === true,
      bad_chunks: n('bad_chunks', d),
    };
  } finally {
    for (const c of [dest, src]) if (c && c.proc.exitCode === null && !c.proc.signalCode) c.proc.kill('SIGKILL');
  }
}

export async function migrateReps(p: CellParams, regionSpec: string): Promise<Row[]> {
  const reps: Row[] = [];
  for (let i = 0; i < p.repeat; i++) reps.push(await migrateOnce(p, regionSpec));
  return reps;
}
