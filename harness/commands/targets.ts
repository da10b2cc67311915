// `faultlab targets floors|remote|prefetch|handler`: the performance targets, side by side in one run.
import type { CommandModule } from 'yargs';
import { writeFileSync } from 'node:fs';
import { floorsBenchmark, formatSeries, handlerBenchmark, judge, prefetchBenchmark, remoteBenchmark, seriesCsv } from '../targets.js';
import { projectCommit } from '../env.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';

export const targetsCommand: CommandModule = {
  command: 'targets <which>',
  describe:
    "performance targets: floors (strategies vs minimal C handlers), remote (vs C TCP and handler floors, the raw transport, and the server's memory), prefetch (policies at 10 and 25 ms RTT), handler (uffd handler process vs threads)",
  builder: (y) =>
    y
      .positional('which', { choices: ['floors', 'remote', 'prefetch', 'handler'] as const, demandOption: true })
      .option('rounds', { type: 'number', default: 7, describe: 'interleaved rounds (medians and spread over rounds)' })
      .option('region', { type: 'string', describe: 'region for the remote and handler (default 64MiB) and prefetch (default 256MiB) benchmarks' })
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
    const log = (s: string) => console.error(s);
    const region = (d: string) => parseSize((a.region as string | undefined) ?? d, 'region');
    const series = judge(
      a.which === 'floors'
        ? await floorsBenchmark(rounds, log)
        : a.which === 'prefetch'
          ? await prefetchBenchmark(rounds, region('256MiB'), log)
          : a.which === 'handler'
            ? await handlerBenchmark(rounds, region('64MiB'), log)
            : await remoteBenchmark(rounds, region('64MiB'), log),
    );
    if (out) {
      const command = ['faultlab', ...process.argv.slice(2)].join(' ');
      writeFileSync(out, seriesCsv(series, { command, commit: projectCommit(), date: new Date().toISOString() }));
      log(`wrote ${out}`);
    }
    if (a.json) console.log(JSON.stringify(series));
    else console.log(formatSeries(series, 'see names'));
  },
};
