// `faultlab floors`: the mechanisms alone, timed like the workloads.
import type { CommandModule } from 'yargs';
import { floorsNative } from '../native.js';
import { paramOption } from './cell-options.js';
import { UsageError } from '../errors.js';

type Floor = Record<string, number | string>;

/** The floors fl_floors runs, in its order (--fetch tcp: the last three). */
const FLOOR_NAMES = ['timer', 'memcpy', 'anon_touch', 'anon_touch_write', 'uffd', 'sigsegv', 'sigsegv_prepopulated'];

export const floorsCommand: CommandModule = {
  command: 'floors',
  describe: 'per-fault cost of the bare mechanisms: anonymous first touch, minimal uffd, minimal SIGSEGV+mprotect, 4 KiB memcpy',
  builder: (y) =>
    y
      .option('pages', { type: 'number', default: 16384, describe: '4 KiB pages per floor' })
      .option('cpus', paramOption('cpus'))
      .option('fetch', {
        choices: ['local', 'tcp'],
        default: 'local',
        describe: 'tcp: the handler floors fetch each page over a minimal C TCP pair (what a remote fault composes), the others do not run',
      })
      .option('server-cpu', { type: 'number', describe: "--fetch tcp: pin that pair's server thread to this CPU (default unpinned)" })
      .option('only', { choices: FLOOR_NAMES, describe: 'run this floor alone' })
      .option('repeat', paramOption('repeat', 'repetitions (fresh mappings each)'))
      .option('json', { type: 'boolean', default: false, describe: 'one JSON object with per-repetition results (reps)' }),
  handler: async (a) => {
    const pages = a.pages as number;
    const repeat = a.repeat as number;
    if (!Number.isInteger(pages) || pages < 1 || pages > 1 << 22) throw new UsageError('--pages must be 1 to 4194304');
    if (!Number.isInteger(repeat) || repeat < 1) throw new UsageError('--repeat must be a whole number from 1');
    const serverCpu = a.serverCpu as number | undefined;
    if (serverCpu !== undefined && a.fetch !== 'tcp') throw new UsageError('--server-cpu places the server of --fetch tcp');
    if (serverCpu !== undefined && (!Number.isInteger(serverCpu) || serverCpu < 0)) throw new UsageError('--server-cpu must be a CPU number');
    const only = a.only as string | undefined;
    const spec = `pages=${pages} cpus=${a.cpus} fetch=${a.fetch}${serverCpu === undefined ? '' : ` server_cpu=${serverCpu}`}${only ? ` only=${only}` : ''}`;
    const reps = [];
    for (let i = 0; i < repeat; i++) reps.push(await floorsNative(spec));
    if (a.json) {
      console.log(JSON.stringify({ cpus: a.cpus, pages, fetch: a.fetch, ...(only ? { only } : {}), reps }));
      return;
    }
    const fetched = a.fetch === 'tcp' ? ', each page fetched over a C TCP pair' : '';
    console.log(`floors: ${pages} pages of 4 KiB, cpus=${a.cpus}${fetched}, ${repeat} repetition(s); p50 is the median over repetitions (ns)`);
    console.log(`${'floor'.padEnd(22)}${'p50'.padStart(10)}${'p99'.padStart(10)}${'mean'.padStart(10)}`);
    const names = Object.keys(reps[0].floors as Record<string, Floor>);
    const med = (xs: number[]) => xs.sort((x, y) => x - y)[xs.length >> 1];
    for (const name of names) {
      const fs = reps.map((r) => (r.floors as Record<string, Floor>)[name]);
      if (fs[0].error) {
        console.log(`${name.padEnd(22)}  error: ${fs[0].error}`);
        continue;
      }
      const col = (k: string) => String(Math.round(med(fs.map((f) => Number(f[k]))))).padStart(10);
      console.log(`${name.padEnd(22)}${col('p50_ns')}${col('p99_ns')}${col('mean_ns')}`);
    }
  },
};
