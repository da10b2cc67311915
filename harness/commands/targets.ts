// `faultlab targets <which>`: the performance targets, side by side in one run.
import type { CommandModule } from 'yargs';
import { writeFileSync } from 'node:fs';
import {
  floorsBenchmark,
  formatSeries,
  handlerBenchmark,
  judge,
  migrateBenchmark,
  prefetchBenchmark,
  remoteBenchmark,
  seriesCsv,
  type Series,
} from '../targets.js';
import { residentBenchmark } from '../targets-resident.js';
import { projectCommit } from '../env.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';

type Log = (s: string) => void;
interface Opts {
  rounds: number;
  region: (fallback: string) => number;
  streamRegion: number;
  residentLimit: number;
}

/** One row per benchmark: what it measures (for --help) and how it runs. */
const BENCHMARKS: Record<string, { what: string; run: (o: Opts, log: Log) => Promise<Series[]> }> = {
  floors: { what: 'strategies vs minimal C handlers', run: (o, log) => floorsBenchmark(o.rounds, log) },
  remote: {
    what: "vs C TCP and handler floors, the raw transport, and the server's memory",
    run: (o, log) => remoteBenchmark(o.rounds, o.region('64MiB'), o.streamRegion, log),
  },
  prefetch: { what: 'policies at 10 and 25 ms RTT', run: (o, log) => prefetchBenchmark(o.rounds, o.region('256MiB'), log) },
  handler: { what: 'uffd handler process vs threads', run: (o, log) => handlerBenchmark(o.rounds, o.region('64MiB'), log) },
  resident: {
    what: 'a region larger than memory through a resident limit',
    run: (o, log) => residentBenchmark(o.rounds, o.region('32GiB'), o.residentLimit, log),
  },
  migrate: { what: 'total and downtime at 5 and 25 ms RTT', run: (o, log) => migrateBenchmark(o.rounds, o.region('64MiB'), log) },
};

export const targetsCommand: CommandModule = {
  command: 'targets <which>',
  describe: `performance targets: ${Object.entries(BENCHMARKS)
    .map(([k, b]) => `${k} (${b.what})`)
    .join(', ')}`,
  builder: (y) =>
    y
      .positional('which', { choices: Object.keys(BENCHMARKS), demandOption: true })
      .option('rounds', { type: 'number', default: 7, describe: 'interleaved rounds (medians and spread over rounds)' })
      .option('region', {
        type: 'string',
        describe: 'region for remote, handler and migrate (default 64MiB), prefetch (default 256MiB) and resident (default 32GiB)',
      })
      .option('stream-region', {
        type: 'string',
        describe:
          "remote: the region its 1 MiB sequential reads stream (default 1GiB: long enough to measure the pipeline's steady state; each run fills about that much memory)",
      })
      .option('resident-limit', { type: 'string', describe: 'resident: the limit the region is read through (default 1GiB)' })
      .option('json', { type: 'boolean', default: false })
      .option('out', {
        type: 'string',
        describe: 'also write the results as CSV to FILE (one row per measure: per-round values, median, spread, target, command, commit)',
      }),
  handler: async (a) => {
    const rounds = a.rounds as number;
    const out = a.out as string | undefined;
    if (out !== undefined && !out.trim()) throw new UsageError('--out needs a file name');
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError('--rounds must be a whole number from 1');
    if (a.residentLimit !== undefined && a.which !== 'resident') throw new UsageError('--resident-limit is for `targets resident`');
    if (a.streamRegion !== undefined && a.which !== 'remote') throw new UsageError('--stream-region is for `targets remote`');
    const log = (s: string) => console.error(s);
    const opts: Opts = {
      rounds,
      region: (d) => parseSize((a.region as string | undefined) ?? d, 'region'),
      residentLimit: parseSize((a.residentLimit as string | undefined) ?? '1GiB', 'resident limit'),
      streamRegion: parseSize((a.streamRegion as string | undefined) ?? '1GiB', 'stream region'),
    };
    if (opts.streamRegion < 1 << 20 || opts.streamRegion % (1 << 20))
      throw new UsageError('--stream-region must be a whole number of MiB, at least 1MiB (it is read in 1 MiB chunks)');
    const series = judge(await BENCHMARKS[a.which as string].run(opts, log));
    if (out) {
      const command = ['faultlab', ...process.argv.slice(2)].join(' ');
      writeFileSync(out, seriesCsv(series, { command, commit: projectCommit(), date: new Date().toISOString() }));
      log(`wrote ${out}`);
    }
    if (a.json) console.log(JSON.stringify(series));
    else console.log(formatSeries(series, 'see names'));
  },
};
