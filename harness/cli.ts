// faultlab command line: one module per command under harness/commands/.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { commands } from './commands/index.js';
import { UsageError } from './errors.js';

const cli = yargs(hideBin(process.argv))
  .scriptName('faultlab')
  .strict()
  .demandCommand(1, 'name a command (see --help)')
  .recommendCommands()
  .help()
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
