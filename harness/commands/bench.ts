// `faultlab bench`: one cell, printed as a table or (--json) one JSON line.
import type { CommandModule } from 'yargs';
import { runCell } from '../bench.js';
import { CPUS, DEFAULTS, SCENARIOS, SOURCES, STRATEGIES, CellParams } from '../cell.js';
import { parseSize, formatSize } from '../sizes.js';
import { printSummary } from '../report.js';
import { touch } from '../native.js';

export const benchCommand: CommandModule = {
  command: 'bench',
  describe: 'run one cell: a strategy, a scenario, a source',
  builder: (y) =>
    y
      .option('strategy', { choices: STRATEGIES, demandOption: true, describe: 'fault-handling strategy or baseline' })
      .option('scenario', { choices: SCENARIOS, default: 'read-seq' as const, describe: 'workload' })
      .option('source', { choices: SOURCES, default: DEFAULTS.source, describe: 'where chunks come from' })
      .option('remote', { type: 'string', describe: 'HOST:PORT of a running `faultlab serve` (default: start one on loopback)' })
      .option('region', { type: 'string', default: formatSize(DEFAULTS.regionBytes), describe: 'region size (4096, 4KiB, 64MiB, 1GiB)' })
      .option('chunk', { type: 'string', default: formatSize(DEFAULTS.chunkBytes), describe: 'bytes fetched per fault, a page multiple' })
      .option('latency', { choices: ['server-delay', 'netem'] as const, default: 'server-delay' as const, describe: 'RTT emulation: per-request server delay, or tc netem on a veth link (where the kernel has netem)' })
      .option('rtt', { type: 'number', default: DEFAULTS.rttMs, describe: 'emulated round trip per request, ms (remote)' })
      .option('cpus', { choices: CPUS, default: DEFAULTS.cpus, describe: 'workload and handler threads on one core, two, or unpinned' })
      .option('handler-threads', { type: 'number', default: DEFAULTS.handlerThreads, describe: 'uffd handler threads' })
      .option('repeat', { type: 'number', default: DEFAULTS.repeat, describe: 'fresh regions to measure; figures are medians' })
      .option('seed', { type: 'number', default: DEFAULTS.seed, describe: 'contents and random order seed' })
      .option('fetch-timeout', { type: 'number', default: DEFAULTS.fetchTimeoutMs, describe: 'ms before a fetch fails the run' })
      .option('disk-dir', { type: 'string', describe: 'folder for the disk baseline file (default /tmp)' })
      .option('corrupt', { type: 'string', hidden: true, describe: 'tests: flip one source byte at this offset' })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (with per-repetition rows) as the last line' }),
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
    };
    // Test hook: crash this child for real (a fault outside every region), so
    // tests can check that the runner records a crashed cell and goes on.
    if (process.env.FAULTLAB_TEST_CRASH === params.strategy) touch(16n);
    const result = await runCell(params);
    if (a.json) console.log(JSON.stringify({ ...result.summary, reps: result.reps }));
    else printSummary(result.summary);
    // A run that read wrong bytes is a failed run, never a result.
    if (result.summary.verified !== true) {
      console.error('faultlab: verification FAILED: bytes read did not match the source contents');
      process.exitCode = 3;
    }
  },
};
