// `faultlab targets floors|remote|prefetch`: the performance targets, side by side in one run.
import type { CommandModule } from 'yargs';
import { floorsBenchmark, formatSeries, judge, prefetchBenchmark, remoteBenchmark } from '../targets.js';
import { residentBenchmark } from '../targets-resident.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';

export const targetsCommand: CommandModule = {
  command: 'targets <which>',
  describe:
    'performance targets: floors (strategies vs minimal C handlers), remote (vs the transport floor), prefetch (policies at 10 and 25 ms RTT), resident (a region larger than memory through a resident limit)',
  builder: (y) =>
    y
      .positional('which', { choices: ['floors', 'remote', 'prefetch', 'resident'] as const, demandOption: true })
      .option('rounds', { type: 'number', default: 7, describe: 'interleaved rounds (medians and spread over rounds)' })
      .option('region', {
        type: 'string',
        describe: 'region for the remote (default 64MiB), prefetch (default 256MiB) and resident (default 32GiB) benchmarks',
      })
      .option('resident-limit', { type: 'string', describe: 'resident: the limit the region is read through (default 1GiB)' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const rounds = a.rounds as number;
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError('--rounds must be a whole number from 1');
    const log = (s: string) => console.error(s);
    const region = (d: string) => parseSize((a.region as string | undefined) ?? d, 'region');
    const series = judge(
      a.which === 'resident'
        ? await residentBenchmark(rounds, region('32GiB'), parseSize((a.residentLimit as string | undefined) ?? '1GiB', 'resident limit'), log)
        : a.which === 'floors'
          ? await floorsBenchmark(rounds, log)
          : a.which === 'prefetch'
            ? await prefetchBenchmark(rounds, region('256MiB'), log)
            : await remoteBenchmark(rounds, region('64MiB'), log),
    );
    if (a.json) console.log(JSON.stringify(series));
    else console.log(formatSeries(series, 'see names'));
  },
};
