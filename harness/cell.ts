// What one benchmark cell is: its parameters (harness/params.ts), their
// validation, and the native specs they become.
import { UsageError } from './errors.js';
import { PARAM_LIST, RULES, usesSource, type CellParams } from './params.js';
import { remoteSpec, type RemoteTarget } from './remote.js';

// For code that builds a cell by hand ({ ...DEFAULTS, strategy, ... }).
export { DEFAULTS, type CellParams } from './params.js';

/** Checks everything that can be checked before anything runs: each value, then the rules between them. */
export function validateCell(p: CellParams): CellParams {
  for (const [name, d] of PARAM_LIST) {
    const v = p[name];
    if (v === undefined && d.default === undefined && !d.required) continue; // optional and not set
    const why = (d.check ?? d.kind.cellCheck)?.(v);
    if (why) throw new UsageError(why);
  }
  for (const rule of RULES) {
    const why = rule(p);
    if (why) throw new UsageError(why);
  }
  return p;
}

/** key=value for each set parameter with a key in this spec. */
function specWords(p: CellParams, spec: 'region' | 'run'): string[] {
  return PARAM_LIST.flatMap(([name, d]) => {
    const key = d.spec?.[spec];
    const v = p[name];
    return key && v !== undefined && v !== '' && (d.spec!.when?.(p) ?? true) ? [`${key}=${v}`] : [];
  });
}

/** The native run spec: the workload and its knobs. */
export function runSpec(p: CellParams): string {
  return specWords(p, 'run').join(' ');
}

/** The native library's region spec (see native/include/faultlab.h); the source keys say where the server is. */
export function regionSpec(p: CellParams, remote?: RemoteTarget): string {
  const parts = specWords(p, 'region');
  if (usesSource(p.strategy)) {
    if (remote) parts.push('source=tcp', remoteSpec(remote));
    else parts.push('source=local');
    if (remote && p.latency === 'client-delay') parts.push(`client_rtt_us=${Math.round(p.rttMs * 1000)}`);
  }
  return parts.join(' ');
}
