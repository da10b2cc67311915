// `faultlab study`: every matrix the paper uses at one commit, then the paper from it.
import type { CommandModule } from 'yargs';
import { join, relative } from 'node:path';
import { UsageError } from '../errors.js';
import { defaultResultsDir, newRunId } from './run.js';
import { defaultStudyList, runStudy } from '../study.js';

export const studyCommand: CommandModule = {
  command: 'study',
  describe: 'every matrix the paper uses (scenarios/study.json) at one commit into one folder, resumable; then the figures and the paper from it',
  builder: (y) =>
    y
      .option('out', { type: 'string', describe: 'the study folder (default results/study-<time>); the same --out again resumes it, keeping finished cells' })
      .option('quick', { type: 'boolean', default: false, describe: "each matrix's quick variant (a smoke test; fills a copy of the paper in <out>/paper/)" })
      .option('allow-dirty', {
        type: 'boolean',
        default: false,
        describe: 'run from a tree with uncommitted changes (recorded in env.json; the paper says so)',
      })
      .option('list', { type: 'string', default: defaultStudyList, describe: 'the list of matrices (scenarios/study.json)' })
      .option('paper', {
        type: 'string',
        describe: 'the paper to fill (default: paper/paper.md for a full study, <out>/paper/paper.md for --quick); its inputs.json is written beside it',
      })
      .option('skip-paper', { type: 'boolean', default: false, describe: 'run the matrices only' })
      .option('spread-with', {
        type: 'string',
        describe:
          "another finished study folder of the same list (and mode): the paper's run-to-run spread section compares every paper matrix of this study with that folder's run of it (inputs.json names them under spread)",
      })
      .option('cell-timeout', { type: 'number', default: 600, describe: 'seconds before a cell is killed and recorded as failed' }),
  handler: async (a) => {
    const cellTimeout = a['cell-timeout'] as number;
    if (!Number.isFinite(cellTimeout) || cellTimeout <= 0) throw new UsageError(`--cell-timeout ${cellTimeout}: give seconds > 0`);
    const out = (a.out as string | undefined) ?? join(defaultResultsDir, newRunId(a.quick ? 'study-quick' : 'study'));
    const r = await runStudy({
      out,
      quick: a.quick as boolean,
      allowDirty: a['allow-dirty'] as boolean,
      list: a.list as string,
      paper: a.paper as string | undefined,
      skipPaper: a['skip-paper'] as boolean,
      cellTimeoutMs: cellTimeout * 1000,
      spreadWith: a['spread-with'] as string | undefined,
    });
    const rel = (f: string) => relative('.', f) || '.';
    if (!r.complete) {
      console.log(`results: ${rel(r.dir)} (INCOMPLETE: run the same command with --out ${rel(r.dir)} to continue)`);
      process.exitCode = 130;
      return;
    }
    console.log(`results: ${rel(r.dir)} (${r.failedCells} failed cell(s); env.json, one folder per matrix)`);
    if (r.paperPath) console.log(`paper:   ${rel(r.paperPath)} (inputs.json beside it names the runs)`);
    if (r.failedCells) process.exitCode = 1;
  },
};
