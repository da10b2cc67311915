// `faultlab start` (npm start): the main job on a fresh machine. Runs the quick
// matrix, draws its figures, and writes a copy of the paper filled from this run
// (the committed paper/paper.md stays on the committed study, results/study-a).
import type { CommandModule } from 'yargs';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadMatrix } from '../matrix.js';
import { runMatrix } from '../runner.js';
import { defaultResultsDir, newRunId } from './run.js';

const paperSource = fileURLToPath(new URL('../../../paper/paper.md', import.meta.url));

export const startCommand: CommandModule = {
  command: 'start',
  describe: 'main job: quick matrix -> results/<run-id>/ -> figures -> a paper filled from this run',
  builder: (y) => y.option('matrix', { type: 'string', default: 'quick' }).option('out', { type: 'string', default: defaultResultsDir }),
  handler: async (a) => {
    const m = loadMatrix(a.matrix as string);
    const runId = newRunId(m.name);
    console.error(`faultlab start: matrix ${m.name}, ${m.cells.length} cells -> ${relative('.', join(a.out as string, runId)) || '.'}`);
    const r = await runMatrix(m, m.cells, { out: a.out as string, runId, resume: false, cellTimeoutMs: 600_000 });
    if (!r.complete) {
      console.error(`interrupted: the rows so far are in ${r.dir}/runs.csv; finish with: npx faultlab run --matrix ${m.name} --run-id ${runId} --resume`);
      process.exitCode = 130;
      return;
    }
    const paperDir = join(r.dir, 'paper');
    mkdirSync(paperDir, { recursive: true });
    const paperCopy = join(paperDir, 'paper.md');
    copyFileSync(paperSource, paperCopy);
    const note = `> This copy's tables and figures come from run \`${runId}\` (matrix ${m.name}); its prose was written about the committed study in results/study-a/.\n\n`;
    writeFileSync(paperCopy, note + readFileSync(paperCopy, 'utf8'));
    const { generatePaper } = await import('../../analysis/paper.js'); // vega: loaded only when drawing
    const p = await generatePaper({ inDir: r.dir, paperPath: paperCopy });
    const rel = (f: string) => relative('.', f);
    console.log('');
    console.log(`results:  ${rel(join(r.dir, 'runs.csv'))}  (${r.failed} failed cell(s); columns in docs/columns.md)`);
    console.log(`env:      ${rel(join(r.dir, 'env.json'))}`);
    console.log(`figures:  ${rel(join(r.dir, 'figures'))}/  (${p.figures.length} figures: .png, .svg, .vl.json)`);
    console.log(`paper:    ${rel(p.htmlPath)}  (open in a browser; markdown beside it)`);
    if (r.failed) process.exitCode = 1;
  },
};
