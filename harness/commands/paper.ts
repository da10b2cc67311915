// `faultlab paper`: regenerate paper/paper.md's marked sections and paper.html from one run or several.
import { existsSync } from 'node:fs';
import { relative, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { MissingColumnError } from '../../analysis/runs.js';
import { UsageError } from '../errors.js';
import { inputsPathFor, readPaperInputsDoc, writePaperInputs } from '../paper-inputs.js';

const WRITTEN_BY_PAPER =
  '`faultlab paper --in` wrote this: the runs in --in order and the --spread-in runs. `faultlab paper` without --in reads it. Paths are relative to this folder.';

export const paperCommand: CommandModule = {
  command: 'paper',
  describe: 'fill the generated sections of the paper from one run (or several) and write paper.html',
  builder: (y) =>
    y
      .option('in', {
        type: 'string',
        array: true,
        describe:
          'results/<run-id> directory (runs.csv, env.json); repeat to combine runs (set-up table from the first); default: the runs inputs.json beside the paper names (paper/inputs.json); given, they and --spread-in are written to that inputs.json',
      })
      .option('spread-in', {
        type: 'string',
        array: true,
        describe:
          "results/<run-id> directories for the run-to-run spread section: every matrix given two or more times is compared cell by cell (two studies: both folders' runs of every matrix); default: the spread runs of inputs.json, else --in runs sharing a matrix",
      })
      .option('paper', { type: 'string', default: 'paper/paper.md', describe: 'the markdown paper to update in place' }),
  handler: async (a) => {
    const given = ((a.in as string[] | undefined) ?? []).map(String);
    const inputsPath = inputsPathFor(a.paper as string);
    const inputs = given.length ? null : readPaperInputsDoc(inputsPath);
    const inDirs = inputs ? inputs.runs : given;
    for (const inDir of inDirs) if (!existsSync(inDir)) throw new UsageError(`${inDir} not found (--in names a results/<run-id> directory)`);
    const spreadGiven = ((a['spread-in'] as string[] | undefined) ?? []).map(String);
    const spreadIn = spreadGiven.length ? spreadGiven : (inputs?.spread ?? []);
    for (const d of spreadIn) if (!existsSync(d)) throw new UsageError(`${d} not found (--spread-in names a results/<run-id> directory)`);
    const twice = spreadIn.find((d, i) => spreadIn.findIndex((e) => resolve(e) === resolve(d)) !== i);
    if (twice) throw new UsageError(`--spread-in ${twice} is given twice; give each run once`);
    try {
      const { generatePaper } = await import('../../analysis/paper.js'); // vega: loaded only here and in start
      const r = await generatePaper({ inDir: inDirs, paperPath: a.paper as string, spreadIn });
      for (const w of r.warnings) console.error(`warning: ${w}`);
      // What was given on the command line goes to inputs.json, so a bare `faultlab paper` rebuilds these bytes.
      if (given.length || spreadGiven.length) {
        writePaperInputs(inputsPath, inDirs, inputs ? inputs.note : WRITTEN_BY_PAPER, spreadIn);
        console.log(`${relative('.', inputsPath)}: ${inDirs.length} runs, ${spreadIn.length} spread runs`);
      }
      console.log(`${relative('.', r.paperPath)}: filled ${r.sections.join(', ')}`);
      console.log(`${relative('.', r.htmlPath)}: ${r.figures.length} figures inlined`);
    } catch (e) {
      if (e instanceof MissingColumnError) throw new UsageError(e.message);
      throw e;
    }
  },
};
