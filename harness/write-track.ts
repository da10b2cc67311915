// The write-track scenario: a tracker, a writer, pushes to the remote, and a
// byte-for-byte comparison at the end, all timed in C (fl_write_track).
import type { CellParams } from './params.js';
import type { Row } from './columns.js';
import { writeTrackNative } from './native.js';

export const WRITE_TRACK_DEFAULTS = { pattern: 'random', writeFraction: 0.05, intervals: 4 } as const;

/** The native spec: the region keys plus the tracker and writer keys. */
export function writeTrackSpec(p: CellParams, regionSpec: string): string {
  const parts = [
    regionSpec,
    `tracker=${p.strategy}`,
    `pattern=${p.pattern ?? WRITE_TRACK_DEFAULTS.pattern}`,
    `write_fraction=${p.writeFraction ?? WRITE_TRACK_DEFAULTS.writeFraction}`,
    `intervals=${p.intervals ?? WRITE_TRACK_DEFAULTS.intervals}`,
  ];
  if (p.injectUntracked) parts.push('inject_untracked=1');
  return parts.join(' ');
}

/** One fresh region per repetition; the native call runs off the event loop
 * (an embedded chunk server may be the remote being written to). */
export async function writeTrackReps(p: CellParams, regionSpec: string): Promise<Row[]> {
  const spec = writeTrackSpec(p, regionSpec);
  const reps: Row[] = [];
  for (let i = 0; i < p.repeat; i++) reps.push((await writeTrackNative(spec)) as Row);
  return reps;
}
