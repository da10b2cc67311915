// `faultlab chart`: results/<run-id>/runs.csv -> Vega-Lite, SVG and PNG figures.
// Several --in: rows concatenated; each figure goes to the figures/ of the run its rows came from.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CommandModule } from 'yargs';
import { loadRunDirs, type LoadedRuns } from '../../analysis/run-dirs.js';
import { MissingColumnError } from '../../analysis/runs.js';
import { UsageError } from '../errors.js';

export const chartCommand: CommandModule = {
  command: 'chart',
  describe: 'draw the figures of one run, or of several together (Vega-Lite spec, SVG and PNG per figure)',
  builder: (y) =>
    y
      .option('in', {
        type: 'string',
        array: true,
        demandOption: true,
        describe: 'results/<run-id> directory holding runs.csv; repeat to draw several runs together',
      })
      .option('out', { type: 'string', describe: 'output directory (default: <in>/figures of the run a figure draws)' }),
  handler: async (a) => {
    const inDirs = (a.in as string[]).map(String);
    for (const inDir of inDirs) {
      const csv = join(inDir, 'runs.csv');
      if (!existsSync(csv)) throw new UsageError(`${csv} not found (--in names a results/<run-id> directory)`);
    }
    let loaded: LoadedRuns;
    try {
      loaded = loadRunDirs(inDirs);
    } catch (e) {
      // A CSV the analysis cannot read is the user's input problem, not a crash.
      if (e instanceof MissingColumnError) throw new UsageError(e.message);
      throw e;
    }
    const { runs, rows } = loaded;
    // Loaded here: vega and resvg would add to every other command's start-up.
    const { buildFigures } = await import('../../analysis/figures/index.js');
    const { renderFigure } = await import('../../analysis/render.js');
    const { figures, skipped } = buildFigures(rows, { runId: runs.length === 1 ? runs[0].id : undefined });
    const rendered = [];
    for (const f of figures) {
      const home = runs.find((r) => r.id === f.runs?.[0]) ?? runs[0];
      rendered.push(await renderFigure(f, (a.out as string | undefined) ?? join(home.dir, 'figures')));
    }
    for (const r of rendered) {
      console.log(`${r.name}: ${relative('.', r.files.png)} (${r.width}x${r.height}), .svg, .vl.json`);
      for (const w of r.warnings) console.error(`warning: ${r.name}: ${w}`);
    }
    if (skipped.length) console.log(`no data for: ${skipped.join(', ')}`);
    if (rendered.length === 0) throw new UsageError(`${inDirs.map((d) => join(d, 'runs.csv')).join(', ')}: no ok rows any figure can use`);
  },
};
