// `faultlab bench`: one cell, printed as a table or (--json) one JSON line.
import type { CommandModule } from 'yargs';
import { PROGRESS_EVERY_MS, runCell, type ProgressFn } from '../bench.js';
import { formatSeconds } from '../progress.js';
import { CPUS, DEFAULTS, LATENCIES, PATTERNS, SCENARIOS, SOURCES, STRATEGIES, TRACKERS, CellParams } from '../cell.js';
import { parseSize, formatSize } from '../sizes.js';
import { printSummary } from '../report.js';
import { touch } from '../native.js';
import { UsageError } from '../errors.js';
import { beyondFromArgv, beyondOptions } from '../beyond.js';

/** A failed cell as one line naming the strategy. Native messages already
 * start with it and name the offset and the cause ("uffd: fetch failed at
 * offset 0x8000: timeout after 500 ms"); set-up errors (connect, HELLO, RTT
 * probe) get the strategy in front. Usage errors stay as they are (exit 2). */
export function cellError(strategy: string, e: unknown): Error {
  if (e instanceof UsageError) return e;
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ').trim();
  return new Error(text.startsWith(`${strategy}:`) ? text : `${strategy}: ${text}`);
}

/** A long run's progress on stderr: rewritten in place on a terminal (and
 * erased by `clear`), a line each otherwise. */
function progressLine(tty: boolean): { report: ProgressFn; clear: () => void } {
  let shown = false;
  return {
    report: ({ repetition, repeat, done, planned, seconds }) => {
      const eta = done ? formatSeconds(((planned - done) * seconds) / done) : '?';
      const line = `bench: repetition ${repetition + 1}/${repeat}: ${done}/${planned} accesses (${Math.floor((100 * done) / planned)}%) in ${formatSeconds(seconds)}, ETA ${eta}`;
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      shown = true;
    },
    clear: () => {
      if (tty && shown) process.stderr.write('\r\x1b[K');
    },
  };
}

export const benchCommand: CommandModule = {
  command: 'bench',
  describe: 'run one cell: a strategy, a scenario, a source',
  builder: (y) =>
    beyondOptions(y)
      .option('strategy', { choices: STRATEGIES, demandOption: true, describe: 'fault-handling strategy or baseline' })
      .option('scenario', { choices: SCENARIOS, default: 'read-seq' as const, describe: 'workload' })
      .option('source', { choices: SOURCES, default: DEFAULTS.source, describe: 'where chunks come from' })
      .option('remote', { type: 'string', describe: 'HOST:PORT of a running `faultlab serve` (default: start one on loopback)' })
      .option('region', { type: 'string', default: formatSize(DEFAULTS.regionBytes), describe: 'region size (4096, 4KiB, 64MiB, 1GiB)' })
      .option('chunk', { type: 'string', default: formatSize(DEFAULTS.chunkBytes), describe: 'bytes fetched per fault, a page multiple' })
      .option('latency', { choices: LATENCIES, default: 'server-delay' as const, describe: 'RTT emulation: per-request server delay, tc netem on a veth link (where the kernel has netem), or client-delay (the C client holds each answer until due)' })
      .option('rtt', { type: 'number', default: DEFAULTS.rttMs, describe: 'emulated round trip per request, ms (remote)' })
      .option('cpus', { choices: CPUS, default: DEFAULTS.cpus, describe: 'workload and handler threads on one core, two, or unpinned' })
      .option('handler-threads', { type: 'number', default: DEFAULTS.handlerThreads, describe: 'uffd handler threads' })
      .option('repeat', { type: 'number', default: DEFAULTS.repeat, describe: 'fresh regions to measure; figures are medians' })
      .option('seed', { type: 'number', default: DEFAULTS.seed, describe: 'contents and random order seed' })
      .option('fetch-timeout', { type: 'number', default: DEFAULTS.fetchTimeoutMs, describe: 'ms before a fetch fails the run' })
      .option('disk-dir', { type: 'string', describe: 'folder for the disk baseline file (default /tmp)' })
      .option('corrupt', { type: 'string', hidden: true, describe: 'tests: flip one source byte at this offset' })
      .option('pattern', { choices: PATTERNS, describe: 'write-track/migrate: which chunks each interval writes (default random; migrate: hot)' })
      .option('write-fraction', { type: 'number', describe: 'write-track/migrate: writes per interval as a fraction of the chunks (default 0.05; migrate: 0.01)' })
      .option('intervals', { type: 'number', describe: 'write-track: write/collect/push intervals, counted in writes not time (default 4)' })
      .option('tracker', { choices: TRACKERS, describe: 'migrate: the source\'s dirty tracker (default uffd-wp)' })
      .option('inject-untracked', { type: 'boolean', hidden: true, describe: 'tests: write-track writes one chunk the tracker cannot see' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (with per-repetition rows) as the last line' })
      .option('progress', { type: 'boolean', describe: `report accesses done and an ETA on stderr every ${PROGRESS_EVERY_MS / 1000} s while a run lasts (default: when stderr is a terminal)` }),
  handler: async (a) => {
    const params: CellParams = {
      strategy: a.strategy as CellParams['strategy'],
      scenario: a.scenario as CellParams['scenario'],
      source: a.source as CellParams['source'],
      remote: a.remote as string | undefined,
      latency: a.latency as CellParams['latency'],
      regionBytes: parseSize(a.region as string, 'region'),
      chunkBytes: parseSize(a.chunk as string, 'chunk'),
      rttMs: a.rtt as number,
      cpus: a.cpus as CellParams['cpus'],
      handlerThreads: a['handler-threads'] as number,
      repeat: a.repeat as number,
      seed: a.seed as number,
      fetchTimeoutMs: a['fetch-timeout'] as number,
      diskDir: a['disk-dir'] as string | undefined,
      corrupt: a.corrupt === undefined ? undefined : parseSize(a.corrupt as string, 'corrupt offset'),
      pattern: a.pattern as CellParams['pattern'],
      writeFraction: a['write-fraction'] as number | undefined,
      intervals: a.intervals as number | undefined,
      tracker: a.tracker as CellParams['tracker'],
      injectUntracked: (a['inject-untracked'] as boolean | undefined) || undefined,
      ...beyondFromArgv(a),
    };
    // Test hook: crash this child for real (a fault outside every region), so
    // tests can check that the runner records a crashed cell and goes on.
    if (process.env.FAULTLAB_TEST_CRASH === params.strategy) touch(16n);
    let result: Awaited<ReturnType<typeof runCell>>;
    const progress = (a.progress ?? process.stderr.isTTY) ? progressLine(process.stderr.isTTY) : undefined;
    try {
      result = await runCell(params, progress?.report);
    } catch (e) {
      throw cellError(params.strategy, e);
    } finally {
      progress?.clear();
    }
    if (a.json) console.log(JSON.stringify({ ...result.summary, reps: result.reps }));
    else printSummary(result.summary);
    // A run that read wrong bytes is a failed run, never a result.
    if (result.summary.verified !== true) {
      const bad = result.reps.find((r) => r.verified === false)?.first_bad_offset;
      const at = typeof bad === 'number' ? ` at offset 0x${bad.toString(16)}` : '';
      console.error(`faultlab: ${params.strategy}: verification FAILED${at}: bytes read did not match the source contents`);
      process.exitCode = 3;
    }
  },
};
