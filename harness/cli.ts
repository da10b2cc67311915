// faultlab command line: one module per command under harness/commands/.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { UsageError } from './errors.js';
import { dieWithParent } from './lifeline.js';

dieWithParent();

const cli = yargs(hideBin(process.argv))
  .scriptName('faultlab')
  .strict()
  .demandCommand(1, 'name a command (see --help)')
  .recommendCommands()
  .help()
  // An option given twice reaches a command as a list ('64MiB,16MiB'): say so,
  // unless the option takes several values (--in, --filter).
  .middleware((argv) => {
    const lists = new Set((cli as unknown as { getOptions(): { array: string[] } }).getOptions().array); // yargs has it; its types do not
    for (const [k, v] of Object.entries(argv))
      if (Array.isArray(v) && k !== '_' && !/[A-Z]/.test(k) && !lists.has(k))
        throw new UsageError(`--${k} was given ${v.length} times (${v.join(', ')}); give it once`);
  }, true)
  .fail((msg, err) => {
    // One clear line, exit 2 for usage errors (yargs' own and ours).
    const text = err ? err.message : msg;
    console.error(`faultlab: ${text}`);
    process.exit(err && !(err instanceof UsageError) ? 1 : 2);
  });
for (const c of commands) cli.command(c);

try {
  await cli.parseAsync();
} catch (e) {
  const err = e as Error;
  console.error(`faultlab: ${err.message}`);
  process.exit(err instanceof UsageError ? 2 : 1);
}
