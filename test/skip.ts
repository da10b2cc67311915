// A vitest test that cannot run here says why: the reason goes to the test
// run's skip log (FAULTLAB_SKIP_LOG, set by test/run-all.sh), whose closing
// summary names every skipped test with it, and to vitest as the skip note.
import { appendFileSync } from 'node:fs';
import { basename } from 'node:path';
import type { TestContext } from 'vitest';

export function skipBecause(ctx: TestContext, reason: string): never {
  const log = process.env.FAULTLAB_SKIP_LOG;
  if (log) appendFileSync(log, JSON.stringify({ file: basename(ctx.task.file?.name ?? ''), title: ctx.task.name, reason }) + '\n');
  return ctx.skip(reason);
}
