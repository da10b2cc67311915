// A vega/vega-lite logger that keeps warnings instead of printing them, so the
// CLI can report them and tests can fail on them.
import type { LoggerInterface } from 'vega';

export interface CollectingLogger extends LoggerInterface {
  warnings: string[];
}

const text = (args: unknown[]) => args.map((a) => (a instanceof Error ? a.message : typeof a === 'string' ? a : JSON.stringify(a))).join(' ');

export function collectingLogger(): CollectingLogger {
  let level = 2; // vega's Warn
  const logger: CollectingLogger = {
    warnings: [],
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: unknown[]) {
      logger.warnings.push(`error: ${text(args)}`);
      return logger;
    },
    warn(...args: unknown[]) {
      logger.warnings.push(text(args));
      return logger;
    },
    info() {
      return logger;
    },
    debug() {
      return logger;
    },
  };
  return logger;
}
