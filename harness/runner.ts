// `faultlab run`: expand a matrix, run every cell in a fresh child process
// (no signal handlers, mappings or threads leak between cells), serve remote
// cells from one chunk server per (RTT, region, seed), append rows to
// results/<run-id>/runs.csv as each cell ends, keep env.json honest about
// whether the run is complete.
import { spawn } from 'node:child_process';
import { accessSync, appendFileSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { stringify } from 'csv-stringify/sync';
import { UsageError } from './errors.js';
import { Matrix, MatrixCell } from './matrix.js';
import { COLUMNS, type Row } from './columns.js';
import { collectEnv, envColumns, EnvInfo } from './env.js';
import { NbdServer, serverRttUs } from './server/nbd-server.js';
import { PARAM_LIST, usesSource, type CellParams } from './params.js';
import { Progress, type CellProgress } from './progress.js';
import { formatSize } from './sizes.js';
import { childEnv } from './lifeline.js';

const cliPath = fileURLToPath(new URL('../../bin/faultlab.js', import.meta.url));

export interface RunOptions {
  out: string;
  runId: string;
  resume: boolean;
  cellTimeoutMs: number;
  /** An NBD server (nbd://HOST:PORT[/EXPORT] or HOST:PORT: `faultlab serve` on
   * this machine or another, nbdkit, ...) that serves every remote cell instead
   * of one the runner starts. */
  remote?: string;
  /** How remote cells emulate their RTT unless a cell sets its own (server-delay: the
   * runner's servers; client-delay: the C client; nbdkit-delay: each cell's bench
   * starts nbdkit's delay filter). */
  latency?: 'server-delay' | 'client-delay' | 'nbdkit-delay';
  /** Progress shown for this matrix (default: its own, with its own ETA); `faultlab study` passes one spanning every matrix. */
  progress?: (estimates: number[], doneCells: number, totalCells: number) => CellProgress;
  /** More keys for env.json (`faultlab study`: the study's folder, commit and --allow-dirty). */
  extraEnv?: Record<string, unknown>;
}

/** A cell's RTT emulation: its own (a matrix axis), else the run's. */
const latencyOf = (c: MatrixCell, o: Pick<RunOptions, 'latency'>) => c.params.latency ?? o.latency ?? 'server-delay';
/** Methods whose bench child starts its own server: the runner starts none and passes no --remote. */
const OWN_SERVER = new Set(['nbdkit-delay', 'netem']);

/** The child's command line for a cell. */
function childArgs(c: MatrixCell, remote?: string, latency: RunOptions['latency'] = 'server-delay'): string[] {
  const p = c.params;
  if (c.kind === 'floors') return ['floors', '--json', '--cpus', p.cpus, '--pages', String(c.count ?? 16384), '--repeat', String(p.repeat)];
  if (c.kind === 'transport')
    return [
      'transport',
      '--json',
      '--remote',
      remote!,
      '--region',
      String(p.regionBytes),
      '--seed',
      String(p.seed),
      '--chunk',
      String(p.chunkBytes),
      '--requests',
      String(c.count ?? 1000),
      '--repeat',
      String(p.repeat),
      '--cpus',
      p.cpus,
      '--rtt',
      String(p.rttMs),
      '--latency',
      latency === 'client-delay' ? latency : 'server-delay', // transport cells always pull from the runner's server
    ];
  // bench's flag for every parameter a matrix sets (params.ts), then the runner's own.
  const args = [
    'bench',
    '--json',
    ...PARAM_LIST.filter(([name, d]) => d.matrix && p[name] !== undefined).flatMap(([name, d]) => [`--${d.flag}`, String(p[name])]),
  ];
  if (remote) args.push('--remote', remote);
  // A cell's own latency came with its parameters above.
  if (latency !== 'server-delay' && p.source === 'remote' && p.latency === undefined) args.push('--latency', latency);
  return args;
}

/** The runs.csv columns of the parameters a cell sets. */
const paramColumns = (p: CellParams): Row =>
  Object.fromEntries(PARAM_LIST.filter(([name, d]) => d.column && p[name] !== undefined).map(([name, d]) => [d.column!, p[name] as string | number | boolean]));

/** A cell that pulls from a remote source (some start their own server: OWN_SERVER). */
const pullsRemote = (c: MatrixCell) => c.kind === 'cell' && c.params.source === 'remote' && usesSource(c.params.strategy);
const needsServer = (c: MatrixCell, o: Pick<RunOptions, 'latency'>) => c.kind === 'transport' || (pullsRemote(c) && !OWN_SERVER.has(latencyOf(c, o)));
/** The cell ids a runs.csv already holds (a cell's rows are appended when it ends, ok or failed). */
export function doneCellIds(csvPath: string): Set<string> {
  const done = new Set<string>();
  if (!existsSync(csvPath)) return done;
  for (const line of readFileSync(csvPath, 'utf8').split('\n').slice(1)) {
    const id = line.split(',')[1];
    if (id) done.add(id);
  }
  return done;
}

/** Cells that share a server: one per RTT and seed, holding the largest region
 * among them (a cell maps a prefix of it). write-track, migrate and
 * write-random change the server's contents: they get one per region, never
 * shared with read cells. */
const writes = (c: MatrixCell) => c.params.scenario === 'write-track' || c.params.scenario === 'migrate' || c.params.scenario === 'write-random';
const serverKey = (c: MatrixCell, o: Pick<RunOptions, 'latency'>) => {
  if (!needsServer(c, o)) return '';
  // client-delay's server answers at once: never shared with a server-delay cell's.
  const rtt = latencyOf(c, o) === 'client-delay' ? 'c' : c.params.rttMs;
  // A writing scenario never reads contents another scenario wrote.
  return `${rtt}/${c.params.seed}${writes(c) ? `/${c.params.regionBytes}/w/${c.params.scenario}` : ''}`;
};

/** A rough cost model, only to weigh the ETA: bytes moved, faults and round trips. */
export function estimateMs(c: MatrixCell): number {
  const p = c.params;
  if (c.kind === 'floors') return 3000 * p.repeat;
  if (c.kind === 'transport') return p.repeat * (c.count ?? 1000) * (p.rttMs + 0.05);
  // migrate streams: a few pipelined batches (round trips) and the region's bytes twice (push, pull).
  if (p.scenario === 'migrate') return 1500 + p.repeat * (10 * (p.rttMs + 0.05) + (2 * p.regionBytes) / 2e5);
  if (p.scenario === 'write-track')
    return 1500 + p.repeat * ((p.regionBytes / p.chunkBytes) * (p.writeFraction ?? 0.05) * (p.intervals ?? 4) * (p.rttMs + 0.05));
  const touched = (p.scenario === 'first-chunk' ? 1 : p.regionBytes / p.chunkBytes) * (p.scenario === 'read-sparse' ? (p.touchFraction ?? 0.1) : 1);
  // Prefetch overlaps round trips: about one per `depth` chunks (plus the transfer, below).
  const overlap = p.prefetch && p.prefetch !== 'none' ? Math.max(1, p.depth ?? 16) : Math.max(1, p.appThreads ?? 1);
  const trips = p.strategy === 'eager' ? Math.ceil(p.regionBytes / 2 ** 20) : p.strategy === 'memory' || p.strategy === 'disk' ? 0 : touched / overlap;
  return 400 + p.repeat * (trips * (p.rttMs + 0.03) + p.regionBytes / 2e6);
}

interface ChildOutcome {
  ok: boolean;
  json?: Record<string, unknown>;
  message: string;
}

/** A bench child's progress line (`bench --progress`), without its prefix. */
const PROGRESS_LINE = /^bench: (repetition .*)$/;

function runChild(args: string[], timeoutMs: number, onChild: (kill: () => void) => void, onProgress?: (line: string) => void): Promise<ChildOutcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv() });
    let stdout = '';
    let stderr = '';
    let partial = ''; // stderr after its last newline
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      // Progress lines go to the progress display, everything else is kept for the message.
      const lines = (partial + d).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const m = PROGRESS_LINE.exec(line);
        if (m && onProgress) onProgress(m[1]);
        else if (!m) stderr += `${line}\n`;
      }
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    onChild(() => child.kill('SIGKILL'));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      stderr += partial;
      const errLines = stderr.trim().split('\n').filter(Boolean);
      // A crashed Node child ends with its version line: the message is its error line.
      const crash = /^Node\.js v\d/.test(errLines.at(-1) ?? '') ? [...errLines].reverse().find((l) => /^\w*Error\b|^\S+Error:/.test(l.trim())) : undefined;
      const lastErr = crash ? `crashed: ${crash.trim()}` : (errLines.pop() ?? '');
      const lastOut = stdout.trim().split('\n').pop() ?? '';
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(lastOut);
      } catch {
        json = undefined;
      }
      if (timedOut) return resolve({ ok: false, message: `cell timed out after ${timeoutMs} ms and was killed` });
      if (code === 0 && json) return resolve({ ok: true, json, message: '' });
      if (json && json.verified === false)
        return resolve({ ok: false, json, message: lastErr.replace(/^faultlab: /, '') || 'verification failed: bytes read did not match the source' });
      resolve({ ok: false, message: lastErr.replace(/^faultlab: /, '') || `child exited with ${signal ? `signal ${signal}` : `code ${code}`}` });
    });
  });
}

/** Child JSON to CSV rows (one per repetition). */
function rowsOf(c: MatrixCell, json: Record<string, unknown>): Row[] {
  const p = c.params;
  const reps = (json.reps as Record<string, unknown>[]) ?? [];
  if (c.kind === 'floors') {
    return reps.flatMap((rep, i) =>
      Object.entries(rep.floors as Record<string, Record<string, number | string>>)
        .filter(([, f]) => !f.error)
        .map(([name, f]) => ({
          strategy: `floor-${name.replace(/_/g, '-')}`,
          scenario: 'floor',
          source: 'none',
          cpus: p.cpus,
          chunk_bytes: 4096,
          region_bytes: (c.count ?? 16384) * 4096,
          rtt_ms: 0,
          fault_ns_p50: f.p50_ns as number,
          fault_ns_p99: f.p99_ns as number,
          fault_ns_mean: f.mean_ns as number,
          faults: f.n as number,
          setup_ns: (f.setup_ns as number | undefined) ?? null,
          verified: true,
          repetition: i,
          repeat: p.repeat,
        })),
    );
  }
  if (c.kind === 'transport') {
    return reps.map((rep, i) => ({
      strategy: 'tcp',
      scenario: 'transport',
      source: 'remote',
      cpus: p.cpus,
      chunk_bytes: p.chunkBytes,
      region_bytes: p.regionBytes,
      rtt_ms: p.rttMs,
      rtt_measured_ms: json.rtt_measured_ms as number,
      latency: json.latency as string,
      fault_ns_p50: rep.p50_ns as number,
      fault_ns_p99: rep.p99_ns as number,
      fault_ns_max: rep.max_ns as number,
      fault_ns_mean: rep.mean_ns as number,
      throughput_mibps: rep.throughput_mibps as number,
      faults: rep.n as number,
      verified: rep.verified as boolean,
      repetition: i,
      repeat: p.repeat,
    }));
  }
  return reps.map((r) => r as Row);
}

function failedRow(c: MatrixCell, message: string): Row {
  const p = c.params;
  return {
    // every parameter the cell sets, so a failed row says which cell it was
    ...paramColumns(p),
    strategy: c.kind === 'floors' ? 'floors' : c.kind === 'transport' ? 'tcp' : p.strategy,
    scenario: c.kind === 'cell' ? p.scenario : c.kind,
    repetition: 0,
    verified: false,
    message,
  };
}

function writeEnv(dir: string, env: object): void {
  writeFileSync(join(dir, 'env.json'), JSON.stringify(env, null, 2) + '\n');
}

export async function runMatrix(m: Matrix, cells: MatrixCell[], o: RunOptions): Promise<{ dir: string; failed: number; complete: boolean }> {
  const dir = join(o.out, o.runId);
  const csvPath = join(dir, 'runs.csv');
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new UsageError(`results directory ${dir} is not writable: ${(e as Error).message}`);
  }
  let done = new Set<string>();
  if (o.resume) {
    if (!existsSync(csvPath)) throw new UsageError(`--resume: ${csvPath} does not exist`);
    done = doneCellIds(csvPath);
  } else {
    if (existsSync(csvPath)) throw new UsageError(`${csvPath} exists: use --resume to finish that run, or another --run-id`);
    writeFileSync(csvPath, stringify([COLUMNS as unknown as string[]]));
  }
  const env: EnvInfo = collectEnv();
  const envDoc: Record<string, unknown> = {
    run_id: o.runId,
    matrix: m.name,
    description: m.description,
    started: new Date().toISOString(),
    finished: null,
    complete: false,
    cells: cells.length,
    latency: o.latency ?? 'server-delay',
    ...env,
    argv: process.argv.slice(2),
    ...o.extraEnv,
  };
  if (o.resume && existsSync(join(dir, 'env.json')))
    Object.assign(envDoc, { resumed: new Date().toISOString(), started: JSON.parse(readFileSync(join(dir, 'env.json'), 'utf8')).started });
  writeEnv(dir, envDoc);
  const envCols = envColumns(env);

  // Cells sharing a server run together; the server closes when the key changes.
  // With one external server (--remote) for everything, cells that write run
  // after every cell that reads: reads verify against the server's original contents.
  const last = (c: MatrixCell) => (o.remote && writes(c) ? 1 : 0);
  const todo = cells.filter((c) => !done.has(c.id)).sort((a, b) => last(a) - last(b) || serverKey(a, o).localeCompare(serverKey(b, o)));
  const progress = (o.progress ?? ((e, d, t) => new Progress(e, d, t)))(todo.map(estimateMs), cells.length - todo.length, cells.length);
  if (o.remote) {
    // nbdkit-delay and netem cells start their own server: say so, not silently pull from elsewhere.
    const own = todo.filter((c) => pullsRemote(c) && OWN_SERVER.has(latencyOf(c, o))).length;
    if (own) console.error(`faultlab run: --remote ${o.remote} serves no nbdkit-delay or netem cell: those ${own} start their own server`);
  }
  const serverRegion = new Map<string, number>();
  for (const c of todo) serverRegion.set(serverKey(c, o), Math.max(serverRegion.get(serverKey(c, o)) ?? 0, c.params.regionBytes));
  let server: NbdServer | null = null;
  let serverFor = '';
  let failed = 0;
  let killChild: (() => void) | null = null;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    killChild?.();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    for (const [i, c] of todo.entries()) {
      if (interrupted) break;
      const key = serverKey(c, o);
      if (key !== serverFor) {
        await server?.close();
        server = null;
        serverFor = key;
        if (key && !o.remote) {
          server = NbdServer.start({
            regionBytes: serverRegion.get(key)!,
            seed: c.params.seed,
            rttUs: serverRttUs(latencyOf(c, o), c.params.rttMs),
          });
        }
      }
      const remote = server ? server.uri : o.remote && needsServer(c, o) ? o.remote : undefined;
      progress.start(i, describe(c));
      // On a terminal, a long cell shows its accesses and ETA as it runs.
      const args = childArgs(c, remote, o.latency);
      if (progress.tty && args[0] === 'bench') args.push('--progress');
      const r = await runChild(
        args,
        o.cellTimeoutMs,
        (k) => (killChild = k),
        (line) => progress.update(line),
      );
      killChild = null;
      if (interrupted) break;
      const stamp = new Date().toISOString();
      let rows: Row[];
      if (r.ok && r.json) rows = rowsOf(c, r.json).map((row) => ({ ...row, status: 'ok', message: '' }));
      else {
        failed++;
        rows = r.json ? rowsOf(c, r.json).map((row) => ({ ...row, status: 'failed', message: r.message })) : [{ ...failedRow(c, r.message), status: 'failed' }];
      }
      // uffd_path: the path the cell's own region used (its JSON) beats doctor's guess from this process.
      // The cell saw our server as a --remote ('external'); its latency is ours.
      const latency: Row = server ? { latency: latencyOf(c, o) } : {};
      rows = rows.map((row) => ({
        ...row,
        ...envCols,
        ...(row.uffd_path ? { uffd_path: row.uffd_path } : {}),
        ...(row.latency === 'external' ? latency : {}),
        run_id: o.runId,
        cell_id: c.id,
        group: c.group,
        timestamp: stamp,
      }));
      appendFileSync(csvPath, stringify(rows, { columns: COLUMNS as unknown as string[], cast: { boolean: (b) => String(b) } }));
      progress.finish(i, r.ok ? summarizeRows(c, rows) : `FAILED: ${r.message}`);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await server?.close();
    progress.end();
  }
  const complete = !interrupted;
  writeEnv(dir, { ...envDoc, finished: new Date().toISOString(), complete, failed_cells: failed, ...(interrupted ? { interrupted: true } : {}) });
  return { dir, failed, complete };
}

function describe(c: MatrixCell): string {
  const p = c.params;
  if (c.kind === 'floors') return `floors cpus=${p.cpus}`;
  if (c.kind === 'transport') return `transport chunk=${formatSize(p.chunkBytes)} rtt=${p.rttMs}ms`;
  const words = PARAM_LIST.filter(([name, d]) => d.label && p[name] !== undefined).map(([name, d]) => {
    const v = p[name];
    return d.label === 'value' ? String(v) : d.label === 'column' ? `${d.column}=${v}` : d.label!(v, p);
  });
  return words.join(' ').trim().replace(/\s+/g, ' ');
}

function summarizeRows(c: MatrixCell, rows: Row[]): string {
  const med = (k: string) => {
    const v = rows
      .map((r) => Number(r[k]))
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
    return v.length ? v[v.length >> 1] : NaN;
  };
  if (c.kind === 'floors')
    return rows
      .map((r) => `${r.strategy} ${(Number(r.fault_ns_p50) / 1000).toFixed(2)}us`)
      .slice(0, 4)
      .join(', ');
  if (c.kind === 'transport') return `p50 ${(med('fault_ns_p50') / 1000).toFixed(1)} us`;
  if (c.params.scenario === 'first-chunk') return `first access ${(med('first_access_ns') / 1000).toFixed(1)} us`;
  if (c.params.scenario === 'write-track')
    return `+${med('write_overhead_ns').toFixed(0)} ns/write, collect ${(med('collect_ns_p50') / 1000).toFixed(1)} us, amplification ${med('write_amplification').toFixed(2)}`;
  if (c.params.scenario === 'migrate') return `migration ${(med('migration_ns') / 1e6).toFixed(1)} ms, downtime ${(med('downtime_ns') / 1e6).toFixed(2)} ms`;
  return `${med('throughput_mibps').toFixed(1)} MiB/s, p50 ${(med('fault_ns_p50') / 1000).toFixed(2)} us/access`;
}
