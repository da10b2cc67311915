// `faultlab chart`: results/<run-id>/runs.csv -> Vega-Lite, SVG and PNG figures.
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { CommandModule } from 'yargs';
import { buildFigures } from '../../analysis/figures/index.js';
import { renderFigures } from '../../analysis/render.js';
import { loadRuns, MissingColumnError } from '../../analysis/runs.js';
import { UsageError } from '../errors.js';

export const chartCommand: CommandModule = {
  command: 'chart',
  describe: 'draw the figures of one run (Vega-Lite spec, SVG and PNG per figure)',
  builder: (y) =>
    y
      .option('in', { type: 'string', demandOption: true, describe: 'results/<run-id> directory holding runs.csv' })
      .option('out', { type: 'string', describe: 'output directory (default: <in>/figures)' }),
  handler: async (a) => {
    const inDir = a.in as string;
    const csv = join(inDir, 'runs.csv');
    if (!existsSync(csv)) throw new UsageError(`${csv} not found (--in names a results/<run-id> directory)`);
    const out = (a.out as string | undefined) ?? join(inDir, 'figures');
    let rows;
    try {
      rows = loadRuns(csv);
    } catch (e) {
      // A CSV the analysis cannot read is the user's input problem, not a crash.
      if (e instanceof MissingColumnError) throw new UsageError(e.message);
      throw e;
    }
    const { figures, skipped } = buildFigures(rows, { runId: inDir.replace(/\/+$/, '').split('/').pop() });
    const rendered = await renderFigures(figures, out);
    for (const r of rendered) {
      console.log(`${r.name}: ${relative('.', r.files.png)} (${r.width}x${r.height}), .svg, .vl.json`);
      for (const w of r.warnings) console.error(`warning: ${r.name}: ${w}`);
    }
    if (skipped.length) console.log(`no data for: ${skipped.join(', ')}`);
    if (rendered.length === 0) throw new UsageError(`${csv} has no ok rows any figure can use`);
  },
};
