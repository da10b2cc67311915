// `faultlab calibrate`: does the emulated latency add what it is configured to?
// For each RTT, empty PING round trips are timed by the C tcp client (the one
// the strategies fetch with) against a chunk server on loopback, in both
// latency modes a run can use: server-delay (the server holds each answer, the
// thesis's method and the default) and client-delay (the server answers at once
// and the C client holds each answer until due). The error is the median minus
// the configured RTT, checked against max(2% of the RTT, 50 us). client-delay
// holds each answer until its send + RTT, so its round trip is the RTT itself.
// server-delay holds each answer until its request's kernel receive time + RTT
// (delayed-io.ts), so its round trip is the RTT plus the loopback's own way
// there and back: the error subtracts that wire time, measured in the same run
// as the RTT-0 median of a control, the same client against a minimal C server
// thread (native/src/server/rtt_control.c) that delays each PING precisely and is
// judged the same way. The chunk server's RTT-0 median (no delay: its event
// loop answers) is reported beside them.
import type { CommandModule } from 'yargs';
import { ChunkServer, type RequestTrace } from '../server/chunk-server.js';
import { rttControlNative, rttProbeNative, rttTraceNative } from '../native.js';
import { Op } from '../server/protocol.js';
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
  /** server-delay: deadline to the answer's send began, median, us */
  serverLateP50Us: number;
  /** The C control (the wire time subtracted). */
  control: ModeResult;
}

/** Where a server-delay round trip's time goes, per RTT: medians over the PINGs, us. */
export interface BreakdownRow {
  configuredMs: number;
  /** client send -> the server has the request (kernel receive time; at RTT 0, its 'data' handler). The delay counts from there. */
  toServerUs: number;
  /** deadline -> the answer's send began (at RTT 0: its write returned) */
  serverLateUs: number;
  /** that -> client received */
  toClientUs: number;
  /** client received - client sent - configured */
  excessUs: number;
  samples: number;
}

export interface Calibration {
  samples: number;
  /** The chunk server at RTT 0 (no delay, its event loop answers): median round trip. */
  baseMs: number;
  /** The C control at RTT 0: the loopback's own round trip, which server-delay and the control are judged against. */
  controlBaseMs: number;
  rows: CalibrationRow[];
  /** Per mode: every setting within the bound. */
  pass: Record<LatencyMode, boolean>;
  /** With breakdown: the split of the RTT-0 base and of each server-delay setting, from the same PINGs. */
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

const medianOf = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

/**
 * Each traced PING on both sides of one clock (CLOCK_MONOTONIC: the C client's
 * send and receive, the chunk server's receive time and its send), split into
 * the way to the server, the server's own lateness and the way back.
 */
function splitRoundTrips(rttMs: number, client: Awaited<ReturnType<typeof rttTraceNative>>, traced: RequestTrace[], samples: number): BreakdownRow {
  const pings = traced.filter((t) => t.op === Op.PING).slice(-samples); // the probe's, after its warm-up
  if (pings.length !== samples) throw new Error(`calibrate --breakdown: the server traced ${pings.length} of ${samples} PINGs`);
  const us = (a: bigint, b: bigint) => Number(b - a) / 1000;
  return {
    configuredMs: rttMs,
    toServerUs: medianOf(pings.map((p, i) => us(client.sentNs[i], p.receivedNs))),
    serverLateUs: medianOf(pings.map((p) => us(p.deadlineNs, p.writtenNs))),
    toClientUs: medianOf(pings.map((p, i) => us(p.writtenNs, client.receivedNs[i]))),
    excessUs: medianOf(pings.map((_, i) => us(client.sentNs[i], client.receivedNs[i]) - rttMs * 1000)),
    samples,
  };
}

/** PINGs against a chunk server started here with serverRttMs, the client holding clientRttMs; traced, also their split. */
async function probe(serverRttMs: number, clientRttMs: number, samples: number, trace = false) {
  const server = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: serverRttMs, trace });
  try {
    const target = { host: server.host, port: server.port, regionBytes: REGION, seed: SEED, clientRttMs };
    const traced = trace ? await rttTraceNative(target, samples) : null;
    const m = traced ?? (await rttProbeNative(target, samples));
    await server.settled();
    return { m, lateP50Us: server.lateness().p50Us, split: traced ? splitRoundTrips(serverRttMs, traced, server.trace(), samples) : undefined };
  } finally {
    await server.close();
  }
}

/** Measure each RTT on loopback in both modes, and the control; with breakdown, the server-delay PINGs are traced too. */
export async function calibrate(rtts: number[], samples: number, opts: { breakdown?: boolean } = {}): Promise<Calibration> {
  const trace = opts.breakdown ?? false;
  const base = await probe(0, 0, samples, trace);
  const baseMs = base.m.medianMs;
  const split: BreakdownRow[] = base.split ? [base.split] : [];
  const controlBaseMs = (await rttControlNative(0, samples)).medianMs;
  const rows: CalibrationRow[] = [];
  for (const rtt of rtts) {
    const server = await probe(rtt, 0, samples, trace);
    if (server.split && rtt !== 0) split.push(server.split);
    const client = await probe(0, rtt, samples);
    const control = await rttControlNative(rtt, samples);
    rows.push({
      configuredMs: rtt,
      boundMs: acceptanceBoundMs(rtt),
      modes: { 'server-delay': judge(server.m, rtt, controlBaseMs), 'client-delay': judge(client.m, rtt, 0) },
      serverLateP50Us: server.lateP50Us,
      control: judge(control, rtt, controlBaseMs),
    });
  }
  const pass = Object.fromEntries(LATENCY_MODES.map((mode) => [mode, rows.every((r) => r.modes[mode].pass)])) as Calibration['pass'];
  return { samples, baseMs, controlBaseMs, rows, pass, ...(trace ? { breakdown: split } : {}) };
}

function printTable(cal: Calibration): void {
  const f = (ms: number) => ms.toFixed(3);
  const us = (ms: number) => (ms * 1000).toFixed(0);
  const verdict = (r: ModeResult, rtt: number) => (r.pass ? 'pass' : r.minMs < rtt ? 'FAIL (early)' : 'FAIL');
  console.log(`calibrate: ${cal.samples} PING round trips per RTT and mode from the C tcp client, on loopback`);
  console.log(`wire = the loopback's own round trip: a minimal C server thread answering at once (the control at RTT 0), median ${f(cal.controlBaseMs)} ms`);
  console.log(`(the chunk server at RTT 0, no delay, its event loop answering: median ${f(cal.baseMs)} ms)`);
  console.log(
    "error = median - configured (server-delay and control: - wire as well); bound = max(2% of configured, 50 us); server late = server-delay: deadline to the answer's send began (p50)",
  );
  console.log('control = the same client against that C server thread delaying each PING precisely');
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
    'control_err_us',
    'control',
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
      us(r.control.errorMs),
      verdict(r.control, r.configuredMs),
    ];
    console.log(cells.map((x) => x.padStart(15)).join(''));
  }
  for (const mode of LATENCY_MODES) {
    const bad = cal.rows.filter((r) => !r.modes[mode].pass).length;
    console.log(`${mode}: ${bad ? `${bad} of ${cal.rows.length} settings outside the bound` : 'every setting within the bound'}`);
  }
  const serverFails = cal.rows.filter((r) => !r.modes['server-delay'].pass);
  if (serverFails.length) {
    const controlFails = serverFails.filter((r) => !r.control.pass).length;
    console.log(
      `server-delay: the C control fails ${controlFails} of the ${serverFails.length} settings outside the bound` +
        (controlFails ? ': there the machine alone exceeds it.' : '.'),
    );
  }
  if (!cal.pass['server-delay'] && cal.pass['client-delay']) console.log('use --latency client-delay for RTTs within the bound on this machine');
}

function printBreakdown(rows: BreakdownRow[]): void {
  console.log(
    '\nserver-delay, where the time goes (medians, us; one clock on both sides): to server = client send -> the server has the request (kernel receive time;',
  );
  console.log(
    "RTT 0: its event loop's 'data' handler); server late = deadline -> its send began (RTT 0: the write returned); to client = that -> client received; excess = round trip - configured",
  );
  const head = ['configured_ms', 'to_server_us', 'server_late_us', 'to_client_us', 'excess_us'];
  console.log(head.map((h) => h.padStart(15)).join(''));
  for (const r of rows)
    console.log(
      [String(r.configuredMs), ...[r.toServerUs, r.serverLateUs, r.toClientUs, r.excessUs].map((x) => x.toFixed(0))].map((x) => x.padStart(15)).join(''),
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
      .option('samples', { type: 'number', default: 100, describe: 'PING round trips per RTT and mode' })
      .option('breakdown', {
        type: 'boolean',
        default: false,
        describe: 'also split each server-delay round trip: to the server, its lateness, back (one clock on both sides)',
      })
      .option('json', { type: 'boolean', default: false, describe: 'print one JSON object' }),
  handler: async (a) => {
    const rtts = parseRttList(a.rtt as string);
    const samples = a.samples as number;
    if (!Number.isInteger(samples) || samples < 1 || samples > 100_000) throw new UsageError('--samples must be a whole number from 1 to 100000');
    if (a.breakdown && samples > 4096) throw new UsageError('--breakdown traces at most 4096 --samples');
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
