// `faultlab benchmark floors|remote`: the performance targets, side by side in one run.
import type { CommandModule } from 'yargs';
import { floorsBenchmark, formatSeries, remoteBenchmark } from '../benchmarks.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';

export const benchmarkCommand: CommandModule = {
  command: 'benchmark <which>',
  describe: 'performance targets: floors (strategies vs minimal C handlers) or remote (vs the transport floor)',
  builder: (y) =>
    y
      .positional('which', { choices: ['floors', 'remote'] as const, demandOption: true })
      .option('rounds', { type: 'number', default: 7, describe: 'interleaved rounds (medians and spread over rounds)' })
      .option('region', { type: 'string', default: '64MiB', describe: 'region for the remote benchmark' })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const rounds = a.rounds as number;
    if (!Number.isInteger(rounds) || rounds < 1) throw new UsageError('--rounds must be a whole number from 1');
    const log = (s: string) => console.error(s);
    const series = a.which === 'floors' ? await floorsBenchmark(rounds, log) : await remoteBenchmark(rounds, parseSize(a.region as string, 'region'), log);
    if (a.json) console.log(JSON.stringify(series));
    else console.log(formatSeries(series, 'see names'));
  },
};
