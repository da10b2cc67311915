// Kinds of parameter value (harness/params.ts): how each is read from a bench
// flag, a matrix file and a --filter, what --help shows as its default, and
// the checks a value must pass.
import { formatSize, parseSize } from './sizes.js';

/** A matrix value's check: null, or why it is wrong ("must be ...", after "<file>: <field> "). */
export type Check = (v: unknown) => string | null;

export const isIn =
  (list: readonly string[]): Check =>
  (v) =>
    list.includes(v as string) ? null : `must be one of ${list.join(', ')}`;
export const isSize: Check = (v) => {
  try {
    parseSize(v as string);
    return null;
  } catch {
    return 'must be a size such as 4096, 4KiB or 64MiB';
  }
};
export const isNum =
  (min: number, max: number): Check =>
  (v) =>
    typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max ? null : `must be a number from ${min} to ${max}`;
export const isInt =
  (min: number, max: number): Check =>
  (v) =>
    Number.isInteger(v) && (v as number) >= min && (v as number) <= max ? null : `must be a whole number from ${min} to ${max}`;
export const isFraction: Check = (v) => (typeof v === 'number' && v > 0 && v <= 1 ? null : 'must be a number in (0, 1]');

/** Whole number within [min, max] (a cell's check; the message is the parameter's own). */
export const whole = (v: number, min: number, max: number): boolean => Number.isInteger(v) && v >= min && v <= max;

// Method syntax on purpose: a Kind<number> is then usable where any kind is.
export interface Kind<T> {
  /** yargs' type, or its choices. */
  yargs: { type: 'string' | 'number' | 'boolean' } | { choices: readonly string[] };
  /** A flag's value as yargs hands it over -> the parameter (undefined: not given). */
  fromFlag(v: unknown): T | undefined;
  /** A matrix value that passed its check -> the parameter. */
  fromMatrix(v: unknown): T;
  /** A --filter value -> what the filter compares with. */
  fromFilter(text: string): string | number;
  /** The default as --help shows it. */
  shown(v: T): unknown;
  /** Checks when the parameter declares none: a matrix value's, a cell's. */
  matrixCheck?: Check;
  cellCheck?(v: T): string | null;
}

const same = <T>(v: unknown) => v as T;

/** One of a list; `what` names it in "unknown <what> 'x' (known: ...)". */
export function choice<T extends string>(list: readonly T[], what: string): Kind<T> {
  return {
    yargs: { choices: list },
    fromFlag: same<T>,
    fromMatrix: same<T>,
    fromFilter: (t) => t,
    shown: (v) => v,
    matrixCheck: isIn(list),
    cellCheck: (v) => (list.includes(v) ? null : `unknown ${what} '${v}' (known: ${list.join(', ')})`),
  };
}

/** A number: whole or not, the parameter's check says. */
export const number: Kind<number> = { yargs: { type: 'number' }, fromFlag: same<number>, fromMatrix: same<number>, fromFilter: Number, shown: (v) => v };

export const text: Kind<string> = { yargs: { type: 'string' }, fromFlag: same<string>, fromMatrix: same<string>, fromFilter: (t) => t, shown: (v) => v };

/** Tests' switches: absent unless given. */
export const onOff: Kind<boolean> = {
  yargs: { type: 'boolean' },
  fromFlag: (v) => (v as boolean | undefined) || undefined,
  fromMatrix: same<boolean>,
  fromFilter: (t) => t,
  shown: (v) => v,
};

/** Bytes, written 4096, 4KiB, 64MiB; `what` names it in a bad flag's message. */
export function size(what: string): Kind<number> {
  return {
    yargs: { type: 'string' },
    fromFlag: (v) => (v === undefined ? undefined : parseSize(v as string, what)),
    fromMatrix: (v) => parseSize(v as string),
    fromFilter: (t) => parseSize(t),
    shown: formatSize,
    matrixCheck: isSize,
  };
}
