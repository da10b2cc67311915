// `faultlab bench`: one cell, printed as a table or (--json) one JSON line.
import type { CommandModule } from 'yargs';
import { PROGRESS_EVERY_MS, runCell, type ProgressFn } from '../bench.js';
import { formatSeconds } from '../progress.js';
import { printSummary } from '../report.js';
import { touch } from '../native.js';
import { UsageError } from '../errors.js';
import { cellFromArgv, cellOptions } from './cell-options.js';

/** A failed cell as one line naming the strategy. Native messages already
 * start with it and name the offset and the cause ("uffd: fetch failed at
 * offset 0x8000: timeout after 500 ms"); set-up errors (connect, NBD handshake, RTT
 * probe) get the strategy in front. Usage errors stay as they are (exit 2). */
export function cellError(strategy: string, e: unknown): Error {
  if (e instanceof UsageError) return e;
  const text = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ').trim();
  return new Error(text.startsWith(`${strategy}:`) ? text : `${strategy}: ${text}`);
}

/** A long run's progress on stderr: rewritten in place on a terminal (and
 * erased by `clear`), a line each otherwise. */
function progressLine(tty: boolean): { report: ProgressFn; clear: () => void } {
  let shown = false;
  return {
    report: ({ repetition, repeat, done, planned, seconds }) => {
      const eta = done ? formatSeconds(((planned - done) * seconds) / done) : '?';
      const line = `bench: repetition ${repetition + 1}/${repeat}: ${done}/${planned} accesses (${Math.floor((100 * done) / planned)}%) in ${formatSeconds(seconds)}, ETA ${eta}`;
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      shown = true;
    },
    clear: () => {
      if (tty && shown) process.stderr.write('\r\x1b[K');
    },
  };
}

export const benchCommand: CommandModule = {
  command: 'bench',
  describe: 'run one cell: a strategy, a scenario, a source',
  builder: (y) =>
    cellOptions(y)
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object (with per-repetition rows) as the last line' })
      .option('progress', {
        type: 'boolean',
        describe: `report accesses done and an ETA on stderr every ${PROGRESS_EVERY_MS / 1000} s while a run lasts (default: when stderr is a terminal)`,
      }),
  handler: async (a) => {
    const params = cellFromArgv(a);
    // Test hook: crash this child for real (a fault outside every region), so
    // tests can check that the runner records a crashed cell and goes on.
    if (process.env.FAULTLAB_TEST_CRASH === params.strategy) touch(16n);
    let result: Awaited<ReturnType<typeof runCell>>;
    const progress = (a.progress ?? process.stderr.isTTY) ? progressLine(process.stderr.isTTY) : undefined;
    try {
      result = await runCell(params, progress?.report);
    } catch (e) {
      throw cellError(params.strategy, e);
    } finally {
      progress?.clear();
    }
    if (a.json) console.log(JSON.stringify({ ...result.summary, reps: result.reps }));
    else printSummary(result.summary);
    // A run that read wrong bytes is a failed run, never a result.
    if (result.summary.verified !== true) {
      const bad = result.reps.find((r) => r.verified === false)?.first_bad_offset;
      const at = typeof bad === 'number' ? ` at offset 0x${bad.toString(16)}` : '';
      console.error(`faultlab: ${params.strategy}: verification FAILED${at}: bytes read did not match the source contents`);
      process.exitCode = 3;
    }
  },
};
