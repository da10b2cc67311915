// Sequential read throughput against emulated RTT, log scale: lazy pulling
// pays one RTT per chunk, so it falls like 1/RTT; eager pays it once.
import { thesisValuesFor } from '../thesis.js';
import { rttLines } from './rtt-lines.js';
import type { FigureDef } from './types.js';

const NAME = 'throughput-vs-rtt';

export const throughputVsRtt: FigureDef = {
  name: NAME,
  caption:
    'Sequential read throughput against emulated RTT for the remote methods (median, band: its 95 % bootstrap interval, log scale, MiB = 2^20 bytes). ' +
    'Black triangle and dashed line: the thesis, userfaultfd below 1 MB/s from 6 ms RTT on (an upper bound, read off its figure).',
  build: ({ rows, thesis, runId }) =>
    rttLines({
      rows: rows.filter((r) => r.scenario === 'read-seq'),
      runId,
      title: 'Read throughput vs RTT (sequential)',
      yTitle: 'read throughput (MiB/s, log scale)',
      logY: true,
      value: (r) => r.throughputMibps,
      thesis: thesisValuesFor(thesis, NAME),
      thesisValue: (v) => v.value,
    }),
};
