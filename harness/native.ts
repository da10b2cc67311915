// The one place the C helper (native/build/libfaultlab.so) is bound through koffi.
import koffi from 'koffi';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const here = dirname(fileURLToPath(import.meta.url));
// Works from harness/ (tsx, vitest) and from dist/harness/ (compiled).
const candidates = [join(here, '../native/build/libfaultlab.so'), join(here, '../../native/build/libfaultlab.so')];
export const libraryPath = process.env.FAULTLAB_LIB ?? candidates.find(existsSync) ?? candidates[0];

// Handler and workload threads are C threads; koffi's own stacks only run the
// short entry calls, so the defaults are enough.
let lib: ReturnType<typeof koffi.load>;
try {
  lib = koffi.load(libraryPath);
} catch (e) {
  throw new Error(`cannot load ${libraryPath} (run 'npm ci' or 'make -C native'): ${(e as Error).message}`);
}

const OUT_LEN = 1 << 20;

const c = {
  regionCreate: lib.func('void *fl_region_create(const char *spec, _Out_ uint8_t *err, size_t errlen)'),
  run: lib.func('int fl_run(void *r, const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  regionDestroy: lib.func('void fl_region_destroy(void *r)'),
  regionProgress: lib.func('uint64_t fl_region_progress(void *r, _Out_ uint64_t *planned)'),
  fill: lib.func('void fl_fill(_Inout_ uint8_t *buf, uint64_t len, uint64_t seed, uint64_t offset)'),
  verify: lib.func('uint64_t fl_verify(const uint8_t *buf, uint64_t len, uint64_t seed, uint64_t offset, _Out_ uint64_t *first_bad)'),
  doctor: lib.func('int fl_doctor(_Out_ uint8_t *out, size_t outlen)'),
  floors: lib.func('int fl_floors(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  transport: lib.func('int fl_transport(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  tcpFloor: lib.func('int fl_tcp_floor(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  streamFloor: lib.func('int fl_stream_floor(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  touch: lib.func('int fl_touch(uintptr_t addr)'),
  writeTrack: lib.func('int fl_write_track(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  migrateSource: lib.func('int fl_migrate_source(const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  migrateDest: lib.func('int fl_migrate_dest(void *r, const char *spec, _Out_ uint8_t *out, size_t outlen)'),
  nowNs: lib.func('uint64_t fl_now_ns(void)'),
};

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

/** A native region: create, run once, destroy. */
export class NativeRegion {
  private handle: unknown;
  private constructor(handle: unknown) {
    this.handle = handle;
  }

  /** Creating a tcp-sourced region connects and does the NBD handshake: off the event loop,
   * so a server on this process's event loop (a test's own) can still answer. */
  static create(spec: string): Promise<NativeRegion> {
    const err = Buffer.alloc(512);
    return new Promise((resolve, reject) => {
      c.regionCreate.async(spec, err, err.length, (e: Error | null, h: unknown) => {
        if (e) return reject(e);
        if (!h) return reject(new Error(cString(err) || 'region create failed'));
        resolve(new NativeRegion(h));
      });
    });
  }

  /** Synchronous create, for sources that need no event loop (local). */
  static createSync(spec: string): NativeRegion {
    const err = Buffer.alloc(512);
    const h = c.regionCreate(spec, err, err.length);
    if (!h) throw new Error(cString(err) || 'region create failed');
    return new NativeRegion(h);
  }

  /** Runs the workload on a C thread (koffi async) so the event loop stays free
   * (an embedded chunk server may be serving this very region's faults). */
  run(spec: string): Promise<Record<string, unknown>> {
    const out = Buffer.alloc(OUT_LEN);
    return new Promise((resolve, reject) => {
      c.run.async(this.handle, spec, out, out.length, (e: Error | null, rc: number) => {
        if (e) return reject(e);
        const text = cString(out);
        if (rc !== 0) return reject(new Error(text || 'run failed'));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`native result is not JSON: ${text.slice(0, 200)}`));
        }
      });
    });
  }

  /** While run() runs: accesses done and planned (0 until the workload starts). */
  progress(): { done: number; planned: number } {
    const planned = [0];
    const done = c.regionProgress(this.handle, planned);
    return { done: Number(done), planned: Number(planned[0]) };
  }

  /** Synchronous run, for callers with no event-loop work pending. */
  runSync(spec: string): Record<string, unknown> {
    const out = Buffer.alloc(OUT_LEN);
    const rc = c.run(this.handle, spec, out, out.length);
    const text = cString(out);
    if (rc !== 0) throw new Error(text || 'run failed');
    return JSON.parse(text);
  }

  /** Migrate's destination half on this (lazy, tcp-sourced) region: see fl_migrate_dest. */
  migrateDest(spec: string): Promise<Record<string, unknown>> {
    return jsonCall((cb) => c.migrateDest.async(this.handle, spec, cb.out, cb.out.length, cb.done));
  }

  destroy(): void {
    if (this.handle) c.regionDestroy(this.handle);
    this.handle = null;
  }
}

/** Fill buf with the contents of [offset, offset + buf.length) for seed (multiples of 8). */
export function fill(buf: Buffer, seed: bigint | number, offset: bigint | number): void {
  c.fill(buf, buf.length, BigInt(seed), BigInt(offset));
}

/** Number of 8-byte words that differ from the expected contents. */
export function verify(buf: Buffer, seed: bigint | number, offset: bigint | number): { bad: number; firstBad: bigint | null } {
  const first = [0n];
  const bad = Number(c.verify(buf, buf.length, BigInt(seed), BigInt(offset), first));
  return { bad, firstBad: bad ? BigInt(first[0]) : null };
}

export function doctorNative(): Record<string, unknown> {
  const out = Buffer.alloc(1 << 16);
  const rc = c.doctor(out, out.length);
  const text = cString(out);
  if (rc !== 0) throw new Error(text);
  return JSON.parse(text);
}

type AsyncCall = (cb: { out: Buffer; done: (e: Error | null, rc: number) => void }) => void;

/** A JSON-returning native call on a koffi worker thread (the event loop stays free). */
function jsonCall(call: AsyncCall): Promise<Record<string, unknown>> {
  const out = Buffer.alloc(OUT_LEN);
  return new Promise((resolve, reject) =>
    call({
      out,
      done: (e, rc) => {
        if (e) return reject(e);
        const text = cString(out);
        if (rc !== 0) return reject(new Error(text || 'native call failed'));
        try {
          resolve(JSON.parse(text));
        } catch {
          reject(new Error(`native result is not JSON: ${text.slice(0, 200)}`));
        }
      },
    }),
  );
}

/** Mechanism floors (fl_floors). */
export const floorsNative = (spec: string) => jsonCall((cb) => c.floors.async(spec, cb.out, cb.out.length, cb.done));

/** The tcp source alone: timed READs with no faults, or op=ping round trips (fl_transport). */
export const transportNative = (spec: string) => jsonCall((cb) => c.transport.async(spec, cb.out, cb.out.length, cb.done));

/** The network floor, no NBD: a minimal C TCP request/response pair on loopback (fl_tcp_floor). */
export const tcpFloorNative = (spec: string) => jsonCall((cb) => c.tcpFloor.async(spec, cb.out, cb.out.length, cb.done));

/** A pipelined pull into UFFDIO_COPY from that pair's server, no NBD and no strategy (fl_stream_floor). */
export const streamFloorNative = (spec: string) => jsonCall((cb) => c.streamFloor.async(spec, cb.out, cb.out.length, cb.done));

export interface ProbeTarget {
  host: string;
  port: number;
  /** The NBD export (default: the server's default export). */
  exportName?: string;
  /** The run's region and seed: the export must be at least this large, and a faultlab server's seed must match. */
  regionBytes: number;
  seed: number | bigint;
  /** latency client-delay: the RTT the client holds each answer for (ms). */
  clientRttMs?: number;
}

/** fl_transport's spec for `pings` empty round trips (NBD_CMD_FLUSH) to t. */
const pingSpec = (t: ProbeTarget, pings: number, fetchTimeoutMs: number, trace: boolean) =>
  `op=ping trace=${trace ? 1 : 0} requests=${pings} source=tcp host=${t.host} port=${t.port}${t.exportName ? ` export=${t.exportName}` : ''} region=${t.regionBytes} seed=${t.seed} ` +
  `chunk=4096 fetch_timeout_ms=${fetchTimeoutMs} cpus=free client_rtt_us=${Math.round((t.clientRttMs ?? 0) * 1000)}`;

/** RTT as the strategies' tcp source sees it: `pings` empty round trips on one fresh connection. */
export async function rttProbeNative(t: ProbeTarget, pings: number, fetchTimeoutMs = 5000) {
  return pingStats(await transportNative(pingSpec(t, pings, fetchTimeoutMs, false)), pings);
}

/** The same probe, also returning each round trip's CLOCK_MONOTONIC send and receive times (ns; at most 4096 pings). */
export async function rttTraceNative(t: ProbeTarget, pings: number, fetchTimeoutMs = 5000) {
  const r = await transportNative(pingSpec(t, pings, fetchTimeoutMs, true));
  const ns = (k: string) => (r[k] as number[]).map((x) => BigInt(x));
  return { ...pingStats(r, pings), sentNs: ns('sent_ns'), receivedNs: ns('received_ns') };
}

/** fl_transport op=ping's quantiles in ms. */
function pingStats(r: Record<string, unknown>, samples: number) {
  const ms = (k: string) => (r[k] as number) / 1e6;
  return { medianMs: ms('p50_ns'), p5Ms: ms('p5_ns'), p95Ms: ms('p95_ns'), minMs: ms('min_ns'), maxMs: ms('max_ns'), samples };
}

/** The write-track scenario (fl_write_track). */
export const writeTrackNative = (spec: string) => jsonCall((cb) => c.writeTrack.async(spec, cb.out, cb.out.length, cb.done));

/** Migrate's source half (fl_migrate_source): returns at cut-over. */
export const migrateSourceNative = (spec: string) => jsonCall((cb) => c.migrateSource.async(spec, cb.out, cb.out.length, cb.done));

/** Test hook: read one byte at an address (provokes a fault where a test chooses). */
export const touch = (addr: bigint): number => c.touch(addr);

export const nowNs = (): bigint => BigInt(c.nowNs());
