// Every CLI command; add a module here to add a command.
import type { CommandModule } from 'yargs';
import { benchCommand } from './bench.js';
import { doctorCommand } from './doctor.js';
import { floorsCommand } from './floors.js';
import { runCommand } from './run.js';
import { transportCommand } from './transport.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [benchCommand, doctorCommand, floorsCommand, runCommand, transportCommand];
