// Every CLI command; add a module here to add a command.
import type { CommandModule } from 'yargs';
import { benchCommand } from './bench.js';
import { calibrateCommand } from './calibrate.js';
import { targetsCommand } from './targets.js';
import { chartCommand } from './chart.js';
import { doctorCommand } from './doctor.js';
import { floorsCommand } from './floors.js';
import { paperCommand } from './paper.js';
import { runCommand } from './run.js';
import { startCommand } from './start.js';
import { studyCommand } from './study.js';
import { transportCommand } from './transport.js';
import { serveCommand } from './serve.js';
import { imageCommand } from './image.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const commands: CommandModule<any, any>[] = [
  benchCommand,
  targetsCommand,
  chartCommand,
  doctorCommand,
  floorsCommand,
  paperCommand,
  runCommand,
  startCommand,
  studyCommand,
  transportCommand,
  serveCommand,
  imageCommand,
  calibrateCommand,
];
