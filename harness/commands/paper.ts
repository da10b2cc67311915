// `faultlab paper`: regenerate paper/paper.md's marked sections and paper.html from one run or several.
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import type { CommandModule } from 'yargs';
import { MissingColumnError } from '../../analysis/runs.js';
import { UsageError } from '../errors.js';
import { inputsPathFor, readPaperInputsDoc } from '../paper-inputs.js';

export const paperCommand: CommandModule = {
  command: 'paper',
  describe: 'fill the generated sections of the paper from one run (or several) and write paper.html',
  builder: (y) =>
    y
      .option('in', {
        type: 'string',
        array: true,
        describe:
          'results/<run-id> directory (runs.csv, env.json); repeat to combine runs (set-up table from the first); default: the runs inputs.json beside the paper names (paper/inputs.json)',
      })
      .option('spread-in', {
        type: 'string',
        array: true,
        describe: 'two or more results/<run-id> directories of one matrix for the run-to-run spread section (default: --in runs sharing a matrix)',
      })
      .option('paper', { type: 'string', default: 'paper/paper.md', describe: 'the markdown paper to update in place' }),
  handler: async (a) => {
    const given = ((a.in as string[] | undefined) ?? []).map(String);
    const inputs = given.length ? null : readPaperInputsDoc(inputsPathFor(a.paper as string));
    const inDirs = inputs ? inputs.runs : given;
    for (const inDir of inDirs) if (!existsSync(inDir)) throw new UsageError(`${inDir} not found (--in names a results/<run-id> directory)`);
    try {
      const { generatePaper } = await import('../../analysis/paper.js'); // vega: loaded only here and in start
      const spreadGiven = ((a['spread-in'] as string[] | undefined) ?? []).map(String);
      const spreadIn = spreadGiven.length ? spreadGiven : (inputs?.spread ?? []);
      for (const d of spreadIn) if (!existsSync(d)) throw new UsageError(`${d} not found (--spread-in names a results/<run-id> directory)`);
      const r = await generatePaper({ inDir: inDirs, paperPath: a.paper as string, spreadIn });
      for (const w of r.warnings) console.error(`warning: ${w}`);
      console.log(`${relative('.', r.paperPath)}: filled ${r.sections.join(', ')}`);
      console.log(`${relative('.', r.htmlPath)}: ${r.figures.length} figures inlined`);
    } catch (e) {
      if (e instanceof MissingColumnError) throw new UsageError(e.message);
      throw e;
    }
  },
};
