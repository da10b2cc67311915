// `faultlab calibrate`: does the emulated latency add what it is configured to?
// For each RTT, empty round trips (NBD_CMD_FLUSH, the RTT probe) are timed by
// the C tcp client (the one the strategies fetch with) against faultlab's C NBD
// server on loopback, in both latency modes a run can use: server-delay (the
// server holds each reply, the thesis's method and the default) and
// client-delay (the server answers at once and the C client holds each reply
// until due). The error is the median minus the configured RTT, checked
// against max(2% of the RTT, 50 us). client-delay holds each reply until its
// send + RTT, so its round trip is the RTT itself. server-delay holds each
// reply until its request's kernel receive time + RTT, so its round trip is the
// RTT plus the loopback's own way there and back: the error subtracts that wire
// time, measured in the same run as the RTT-0 median of the same server (a C
// thread answering at once). The server's lateness (deadline to the reply's
// send began) comes from its counters (fl_nbd_stats), over all its replies:
// the C server keeps no per-request trace, so --breakdown splits each round
// trip from the client's side only (round trip, wire, server lateness, rest).
import type { CommandModule } from 'yargs';
import { NbdServer, rttUs } from '../server/nbd-server.js';
import { rttProbeNative } from '../native.js';
import { UsageError } from '../errors.js';

export const LATENCY_MODES = ['server-delay', 'client-delay'] as const;
export type LatencyMode = (typeof LATENCY_MODES)[number];

export interface ModeResult {
  medianMs: number;
  p5Ms: number;
  p95Ms: number;
  minMs: number;
  /** median - configured - the wire time it is judged against (0 for client-delay) */
  errorMs: number;
  /** within the bound at the median, and never early */
  pass: boolean;
}

export interface CalibrationRow {
  configuredMs: number;
  /** max(2% of configured, 0.05 ms) */
  boundMs: number;
  modes: Record<LatencyMode, ModeResult>;
  /** server-delay: deadline to the reply's send began, p50 over the server's replies (its counters), us */
  serverLateP50Us: number;
}

/** Where a server-delay round trip's time goes, per RTT, from the client's side (medians over the FLUSH round trips, us). */
export interface BreakdownRow {
  configuredMs: number;
  /** client sent -> client received */
  roundTripUs: number;
  /** the loopback's own round trip: the same server at RTT 0 */
  wireUs: number;
  /** deadline -> the reply's send began, p50 over the server's replies (fl_nbd_stats' late_p50_ns) */
  serverLateUs: number;
  /** round trip - configured */
  excessUs: number;
  /** excess - wire - server late: what neither accounts for (client wake-up, scheduling) */
  restUs: number;
  samples: number;
}

export interface Calibration {
  samples: number;
  /** faultlab's C NBD server at RTT 0 (a C thread answering at once): the loopback's own round trip, the wire time server-delay is judged against. */
  baseMs: number;
  rows: CalibrationRow[];
  /** Per mode: every setting within the bound. */
  pass: Record<LatencyMode, boolean>;
  /** With breakdown: the split of the RTT-0 base and of each server-delay setting, from the client's side. */
  breakdown?: BreakdownRow[];
}

export const acceptanceBoundMs = (rttMs: number): number => Math.max(0.02 * rttMs, 0.05);

const REGION = 1 << 16;
const SEED = 1;

type Probe = Awaited<ReturnType<typeof rttProbeNative>>;
function judge(m: Probe, rttMs: number, wireMs: number): ModeResult {
  const errorMs = m.medianMs - rttMs - wireMs;
  return {
    medianMs: m.medianMs,
    p5Ms: m.p5Ms,
    p95Ms: m.p95Ms,
    minMs: m.minMs,
    errorMs,
    pass: Math.abs(errorMs) <= acceptanceBoundMs(rttMs) && m.minMs >= rttMs,
  };
}

/** FLUSH round trips against a C NBD server started here with serverRttMs, the client holding clientRttMs; the server's lateness from its counters.
 * Every server-delay server here (the wire one at RTT 0, and a configured RTT of 0 too) is asked for
 * rxStamps, so the wire subtracted from each includes the stamp's cost and its lateness the server's
 * wake-up; client-delay's servers answer at once, as in a run. */
async function probe(serverRttMs: number, clientRttMs: number, samples: number, rxStamps?: boolean) {
  const server = NbdServer.start({ regionBytes: REGION, seed: SEED, rttUs: rttUs(serverRttMs), logFd: -1, rxStamps });
  try {
    const m = await rttProbeNative({ host: server.host, port: server.port, regionBytes: REGION, seed: SEED, clientRttMs }, samples);
    return { m, lateP50Us: server.stats().late_p50_ns / 1000 };
  } finally {
    server.stop();
  }
}

function split(rttMs: number, m: Probe, wireMs: number, lateP50Us: number, samples: number): BreakdownRow {
  const roundTripUs = m.medianMs * 1000;
  const excessUs = roundTripUs - rttMs * 1000;
  const wireUs = wireMs * 1000;
  return { configuredMs: rttMs, roundTripUs, wireUs, serverLateUs: lateP50Us, excessUs, restUs: excessUs - wireUs - lateP50Us, samples };
}

/** Measure each RTT on loopback in both modes; with breakdown, also split the server-delay round trips from the client's side. */
export async function calibrate(rtts: number[], samples: number, opts: { breakdown?: boolean } = {}): Promise<Calibration> {
  const base = await probe(0, 0, samples, true);
  const baseMs = base.m.medianMs;
  const parts: BreakdownRow[] = [split(0, base.m, baseMs, base.lateP50Us, samples)];
  const rows: CalibrationRow[] = [];
  for (const rtt of rtts) {
    const server = await probe(rtt, 0, samples, true);
    if (rtt !== 0) parts.push(split(rtt, server.m, baseMs, server.lateP50Us, samples));
    const client = await probe(0, rtt, samples);
    rows.push({
      configuredMs: rtt,
      boundMs: acceptanceBoundMs(rtt),
      modes: { 'server-delay': judge(server.m, rtt, baseMs), 'client-delay': judge(client.m, rtt, 0) },
      serverLateP50Us: server.lateP50Us,
    });
  }
  const pass = Object.fromEntries(LATENCY_MODES.map((mode) => [mode, rows.every((r) => r.modes[mode].pass)])) as Calibration['pass'];
  return { samples, baseMs, rows, pass, ...(opts.breakdown ? { breakdown: parts } : {}) };
}

function printTable(cal: Calibration): void {
  const f = (ms: number) => ms.toFixed(3);
  const us = (ms: number) => (ms * 1000).toFixed(0);
  const verdict = (r: ModeResult, rtt: number) => (r.pass ? 'pass' : r.minMs < rtt ? 'FAIL (early)' : 'FAIL');
  console.log(`calibrate: ${cal.samples} FLUSH round trips per RTT and mode from the C tcp client to faultlab's C NBD server, on loopback`);
  console.log(`wire = the loopback's own round trip: the same server at RTT 0 (a C thread answering at once), median ${f(cal.baseMs)} ms`);
  console.log(
    "error = median - configured (server-delay: - wire as well); bound = max(2% of configured, 50 us); server late = server-delay: deadline to the reply's send began (p50 over the server's replies, from its counters)",
  );
  const head = [
    'configured_ms',
    'bound_us',
    'server_median',
    'server_err_us',
    'server-delay',
    'server_late_us',
    'client_median',
    'client_err_us',
    'client-delay',
  ];
  console.log(head.map((h) => h.padStart(15)).join(''));
  for (const r of cal.rows) {
    const s = r.modes['server-delay'];
    const c = r.modes['client-delay'];
    const cells = [
      String(r.configuredMs),
      us(r.boundMs),
      f(s.medianMs),
      us(s.errorMs),
      verdict(s, r.configuredMs),
      r.serverLateP50Us.toFixed(1),
      f(c.medianMs),
      us(c.errorMs),
      verdict(c, r.configuredMs),
    ];
    console.log(cells.map((x) => x.padStart(15)).join(''));
  }
  for (const mode of LATENCY_MODES) {
    const bad = cal.rows.filter((r) => !r.modes[mode].pass).length;
    console.log(`${mode}: ${bad ? `${bad} of ${cal.rows.length} settings outside the bound` : 'every setting within the bound'}`);
  }
  if (!cal.pass['server-delay'] && cal.pass['client-delay']) console.log('use --latency client-delay for RTTs within the bound on this machine');
}

function printBreakdown(rows: BreakdownRow[]): void {
  console.log(
    "\nserver-delay, where the time goes (us), from the client's side: the C server keeps no per-request trace, so the way there and back are one wire time",
  );
  console.log(
    "round trip = client sent -> received (median); wire = the RTT-0 median; server late = its counters' p50; excess = round trip - configured; rest = excess - wire - server late",
  );
  const head = ['configured_ms', 'round_trip_us', 'wire_us', 'server_late_us', 'excess_us', 'rest_us'];
  console.log(head.map((h) => h.padStart(15)).join(''));
  for (const r of rows)
    console.log(
      [String(r.configuredMs), ...[r.roundTripUs, r.wireUs, r.serverLateUs, r.excessUs, r.restUs].map((x) => x.toFixed(0))].map((x) => x.padStart(15)).join(''),
    );
}

export function parseRttList(text: string): number[] {
  const out = String(text)
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '')
    .map((s) => {
      const n = Number(s);
      if (!Number.isFinite(n) || n < 0 || n > 10_000) throw new UsageError(`bad --rtt value '${s}': give ms from 0 to 10000, comma separated`);
      return n;
    });
  if (!out.length) throw new UsageError('--rtt needs at least one value, e.g. 0.5,1,2');
  return out;
}

export const calibrateCommand: CommandModule = {
  command: 'calibrate',
  describe: 'check the emulated latency on loopback: measured vs configured RTT per setting, server-delay and client-delay',
  builder: (y) =>
    y
      .option('rtt', { type: 'string', default: '0.5,1,2,5,10,20,40', describe: 'RTTs to check, ms, comma separated' })
      .option('samples', { type: 'number', default: 100, describe: 'FLUSH round trips (the RTT probe) per RTT and mode' })
      .option('breakdown', {
        type: 'boolean',
        default: false,
        describe:
          "also split each server-delay round trip from the client's side: wire (the RTT-0 median), the server's lateness (p50 of its counters), the rest (the C server keeps no per-request trace)",
      })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }),
  handler: async (a) => {
    const rtts = parseRttList(a.rtt as string);
    const samples = a.samples as number;
    if (!Number.isInteger(samples) || samples < 1 || samples > 100_000) throw new UsageError('--samples must be a whole number from 1 to 100000');
    const cal = await calibrate(rtts, samples, { breakdown: a.breakdown as boolean });
    if (a.json) console.log(JSON.stringify(cal));
    else {
      printTable(cal);
      if (cal.breakdown) printBreakdown(cal.breakdown);
    }
    // Exit 1 when no latency mode meets the bound everywhere.
    if (!Object.values(cal.pass).some(Boolean)) process.exitCode = 1;
  },
};
