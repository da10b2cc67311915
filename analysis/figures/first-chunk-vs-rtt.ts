// First-access latency against emulated RTT: the thesis's claim is that
// userfaultfd's first chunk costs about one RTT, growing linearly.
import { thesisValuesFor } from '../thesis.js';
import { rttLines } from './rtt-lines.js';
import type { FigureDef } from './types.js';

const NAME = 'first-chunk-vs-rtt';

export const firstChunkVsRtt: FigureDef = {
  name: NAME,
  caption:
    'First-chunk latency against emulated RTT for the remote methods (median, band: its 95 % bootstrap interval; log scale, because eager’s first access, a whole-region copy, is decades above the lazy methods’ one round trip). ' +
    'Black diamond: the thesis, userfaultfd about one RTT (read off its figure).',
  build: ({ rows, thesis, runId }) =>
    rttLines({
      rows: rows.filter((r) => r.scenario === 'first-chunk'),
      runId,
      title: 'First-chunk latency vs RTT',
      yTitle: 'first-access latency (ms, log scale)',
      logY: true,
      value: (r) => (r.firstAccessNs === null ? null : r.firstAccessNs / 1e6),
      thesis: thesisValuesFor(thesis, NAME),
      thesisValue: (v) => v.value / 1e6,
    }),
};
