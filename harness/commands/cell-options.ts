// The cell parameters as command-line options (harness/params.ts): every one
// of them for `bench`, and single ones for the commands that share a few
// (transport, floors, serve) with help texts of their own.
import type { Argv, Options } from 'yargs';
import { PARAM_LIST, PARAMS, type CellParams } from '../params.js';

/** A parameter's yargs option: type or choices, and default, from the table; `describe`: its help text, if any. */
export function paramOption(name: keyof CellParams, describe?: string): Options {
  const d = PARAMS[name];
  const dflt = d.default ?? d.flagDefault;
  return {
    ...d.kind.yargs,
    ...(dflt !== undefined ? { default: d.kind.shown(dflt as never) } : {}),
    ...(d.required ? { demandOption: true } : {}),
    ...(d.hidden ? { hidden: true } : {}),
    ...(describe !== undefined ? { describe } : {}),
  };
}

/** Every cell parameter as a bench option. */
export function cellOptions<T>(y: Argv<T>): Argv<T> {
  return PARAM_LIST.reduce((out, [name, d]) => out.option(d.flag, paramOption(name, d.help)), y);
}

/** bench's argv -> the cell (undefined where not given and without a default). */
export function cellFromArgv(a: Record<string, unknown>): CellParams {
  return Object.fromEntries(PARAM_LIST.map(([name, d]) => [name, d.kind.fromFlag(a[d.flag])])) as unknown as CellParams;
}
