// `faultlab run`: a scenario matrix into results/<run-id>/.
import type { CommandModule } from 'yargs';
import { fileURLToPath } from 'node:url';
import { applyFilters, loadMatrix } from '../matrix.js';
import { runMatrix, type RunOptions } from '../runner.js';
import { UsageError } from '../errors.js';
import { parseRemote } from '../remote.js';
import { validateCell } from '../cell.js';
import { nbdkitMissing, usesNbdkit } from '../nbdkit.js';

export const defaultResultsDir = fileURLToPath(new URL('../../../results', import.meta.url));

export function newRunId(matrix: string): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15);
  return `${matrix}-${t}`;
}

export const runCommand: CommandModule = {
  command: 'run',
  describe: 'run a scenario matrix (scenarios/<name>.json or a path) into results/<run-id>/runs.csv + env.json',
  builder: (y) =>
    y
      .option('matrix', { type: 'string', default: 'quick', describe: 'matrix name (quick, thesis, ...) or a .json path' })
      .option('out', { type: 'string', default: defaultResultsDir, describe: 'folder that receives <run-id>/' })
      .option('run-id', { type: 'string', describe: 'name of the run folder (default <matrix>-<time>)' })
      .option('filter', {
        type: 'string',
        array: true,
        default: [] as string[],
        describe: 'keep cells with key=value (strategy, scenario, source, rtt, region, chunk, cpus, group, kind)',
      })
      .option('repeat', { type: 'number', describe: "override every cell's repetitions" })
      .option('resume', { type: 'boolean', default: false, describe: 'finish an interrupted run (needs --run-id)' })
      .option('cell-timeout', { type: 'number', default: 600, describe: 'seconds before a cell is killed and recorded as failed' })
      .option('remote', {
        type: 'string',
        describe:
          "an NBD server for every remote cell, nbd://HOST:PORT[/EXPORT] or HOST:PORT: `faultlab serve` (its --seed and --rtt apply) or any other (nbdkit, qemu-nbd; its contents must be the seed's, see faultlab image); each cell maps a prefix of its --region; default: the runner starts servers on loopback",
      })
      .option('latency', {
        choices: ['server-delay', 'client-delay', 'nbdkit-delay'] as const,
        default: 'server-delay' as const,
        describe:
          "RTT emulation of remote cells that set none (a matrix's latency axis): delay in the runner's servers (the thesis's method), held by the C client (precise; see faultlab calibrate), or nbdkit's delay filter (each cell starts its own nbdkit)",
      })
      .option('list', { type: 'boolean', default: false, describe: 'print the cells and exit' }),
  handler: async (a) => {
    const m = loadMatrix(a.matrix as string);
    let cells = applyFilters(m.cells, a.filter as string[]);
    if (a.repeat !== undefined) {
      if (!Number.isInteger(a.repeat) || (a.repeat as number) < 1) throw new UsageError('--repeat must be a whole number from 1');
      cells = cells.map((c) => ({ ...c, params: { ...c.params, repeat: a.repeat as number } }));
    }
    if (cells.length === 0) throw new UsageError(`no cell of matrix '${m.name}' matches the filters`);
    if (a.resume && !a['run-id']) throw new UsageError('--resume needs --run-id (the folder to finish)');
    if (a.remote !== undefined) parseRemote(a.remote as string);
    if (a.list) {
      for (const c of cells) console.log(`${c.id}  ${c.group}  ${c.kind}  ${JSON.stringify(c.params)}`);
      return;
    }
    // Every cell's parameters are checked before the first one runs (a region
    // larger than memory, cpus=split on one CPU, ...): one line, exit 2.
    const runLatency = a.latency as RunOptions['latency'];
    const nbdkitCells = cells.filter((c) => usesNbdkit(c, runLatency));
    const noNbdkit = nbdkitCells.length ? nbdkitMissing() : null;
    if (noNbdkit) throw new UsageError(`matrix '${m.name}': ${nbdkitCells.length} cell(s) use latency nbdkit-delay, but ${noNbdkit}`);
    for (const c of cells) {
      if (c.kind !== 'cell') continue;
      // A remote cell that sets no latency takes the run's.
      const own = c.params.latency || runLatency === 'server-delay' || c.params.source !== 'remote' ? c.params : { ...c.params, latency: runLatency };
      try {
        validateCell(own);
      } catch (e) {
        throw new UsageError(`matrix '${m.name}', group '${c.group}' (cell ${c.id}): ${(e as Error).message}`);
      }
    }
    const cellTimeout = a['cell-timeout'] as number;
    if (!Number.isFinite(cellTimeout) || cellTimeout <= 0) throw new UsageError(`--cell-timeout ${cellTimeout}: give seconds > 0`);
    const runId = (a['run-id'] as string | undefined) ?? newRunId(m.name);
    console.error(`faultlab run: matrix ${m.name}, ${cells.length} cells -> ${a.out}/${runId}`);
    const r = await runMatrix(m, cells, {
      out: a.out as string,
      runId,
      resume: a.resume as boolean,
      cellTimeoutMs: (a['cell-timeout'] as number) * 1000,
      remote: a.remote as string | undefined,
      latency: runLatency,
    });
    console.log(`results: ${r.dir}/runs.csv (${r.complete ? 'complete' : 'INCOMPLETE: rerun with --resume'}; ${r.failed} failed cell(s))`);
    if (!r.complete) process.exitCode = 130;
    else if (r.failed) process.exitCode = 1;
  },
};
