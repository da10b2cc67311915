// `faultlab targets floors|remote|prefetch|migrate`: the performance targets, side by side in one run.
import type { CommandModule } from 'yargs';
import { floorsBenchmark, formatSeries, judge, migrateBenchmark, prefetchBenchmark, remoteBenchmark } from '../targets.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';

export const targetsCommand: CommandModule = {
  command: 'targets <which>',
  describe:
    'performance targets: floors (strategies vs minimal C handlers), remote (vs the transport floor), prefetch (policies at 10 and 25 ms RTT), migrate (total and downtime at 5 and 25 ms RTT)',
  builder: (y) =>
    y
      .positional('which', { choices: ['floors', 'remote', 'prefetch', 'migrate'] as const, demandOption: true })
      .option('rounds', { type: 'number', default: 7, describe: 'interleaved rounds (medians and spread over rounds)' })
      .option('region', { type: 'string', describe: 'region for the remote and migrate (default 64MiB) and prefetch (default 256MiB) benchmarks' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const rounds = a.rounds as number;
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError('--rounds must be a whole number from 1');
    const log = (s: string) => console.error(s);
    const region = (d: string) => parseSize((a.region as string | undefined) ?? d, 'region');
    const series = judge(
      a.which === 'floors'
        ? await floorsBenchmark(rounds, log)
        : a.which === 'prefetch'
          ? await prefetchBenchmark(rounds, region('256MiB'), log)
          : a.which === 'migrate'
            ? await migrateBenchmark(rounds, region('64MiB'), log)
            : await remoteBenchmark(rounds, region('64MiB'), log),
    );
    if (a.json) console.log(JSON.stringify(series));
    else console.log(formatSeries(series, 'see names'));
  },
};
