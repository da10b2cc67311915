// The C NBD server (native/src/server/nbd_server.h) from TypeScript: start,
// port, counters, stop. It runs on C threads of this process, so it keeps
// serving while the event loop is busy: `faultlab serve`, the runner's and
// bench's embedded servers, transport and calibrate use it (issue 18).
import koffi from 'koffi';
import { libraryPath } from '../native.js';
import { formatHostPort } from '../remote.js';

const lib = koffi.load(libraryPath);
const c = {
  start: lib.func('void *fl_nbd_start(const char *spec, _Out_ uint8_t *err, size_t errlen)'),
  port: lib.func('int fl_nbd_port(void *s)'),
  stats: lib.func('int fl_nbd_stats(void *s, _Out_ uint8_t *json, size_t len)'),
  stop: lib.func('void fl_nbd_stop(void *s)'),
};

export interface NbdServerOptions {
  /** Address to bind (default 127.0.0.1); any other must be asked for. */
  listen?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  regionBytes: number | bigint;
  seed?: number | bigint;
  /** Emulated round trip: each reply leaves at its request's kernel receive time + this. */
  rttUs?: number;
  /** Export name (default 'faultlab'); the empty name reaches it too. */
  exportName?: string;
  maxConns?: number;
  queueCapBytes?: number | bigint;
  totalCapBytes?: number | bigint;
  storeCapBytes?: number | bigint;
  handshakeTimeoutMs?: number;
  idleTimeoutMs?: number;
  payloadTimeoutMs?: number;
  /** Where each refusal or close for cause is logged, one line each (default 2, stderr; -1 none). Should not block. */
  logFd?: number;
  /** Pin the server's threads to this CPU (default: unpinned). */
  cpu?: number;
  /** Date requests by the kernel's receive stamp (default: only when rttUs > 0, where deadlines count from it). */
  rxStamps?: boolean;
}

/** fl_nbd_stats' JSON (include/faultlab.h). */
export interface NbdServerStats {
  listen: string;
  port: number;
  region: number;
  rtt_us: number;
  requests: number;
  reads: number;
  writes: number;
  flushes: number;
  errors: number;
  bytes_read: number;
  bytes_written: number;
  conns_accepted: number;
  conns_refused: number;
  conns_closed: number;
  conns_closed_for_cause: number;
  conns_open: number;
  queued_bytes: number;
  max_queued_bytes: number;
  max_conn_queued_bytes: number;
  queue_cap: number;
  total_cap: number;
  paused_reads: number;
  late_samples: number;
  late_p50_ns: number;
  late_max_ns: number;
  /** The sender thread's waits that ended (a reply the event loop sent itself wakes it not). */
  sender_wakeups: number;
}

const KEYS: [keyof NbdServerOptions, string][] = [
  ['listen', 'listen'],
  ['port', 'port'],
  ['regionBytes', 'region'],
  ['seed', 'seed'],
  ['rttUs', 'rtt_us'],
  ['exportName', 'export'],
  ['maxConns', 'max_conns'],
  ['queueCapBytes', 'queue_cap'],
  ['totalCapBytes', 'total_cap'],
  ['storeCapBytes', 'store_cap'],
  ['handshakeTimeoutMs', 'handshake_timeout_ms'],
  ['idleTimeoutMs', 'idle_timeout_ms'],
  ['payloadTimeoutMs', 'payload_timeout_ms'],
  ['logFd', 'log_fd'],
  ['cpu', 'cpu'],
  ['rxStamps', 'rx_stamps'],
];

/** The C server's spec for these options; the C side checks the values. */
export function nbdSpec(opts: NbdServerOptions): string {
  const parts: string[] = [];
  for (const [name, key] of KEYS) {
    const v = opts[name];
    if (v === undefined) continue;
    const text = typeof v === 'boolean' ? (v ? '1' : '0') : String(v);
    if (text === '' || /\s/.test(text)) throw new Error(`nbd server: ${name} '${text}' cannot be passed (empty or with spaces)`);
    parts.push(`${key}=${text}`);
  }
  return parts.join(' ');
}

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.subarray(0, end < 0 ? buf.length : end).toString('utf8');
}

/** Milliseconds of emulated RTT as the server's rtt_us. */
export const rttUs = (rttMs: number): number => Math.round(rttMs * 1000);

/** The RTT a server holds its replies for: none where the client holds them (client-delay). */
export const serverRttUs = (latency: string | undefined, rttMs: number): number => (latency === 'client-delay' ? 0 : rttUs(rttMs));

export class NbdServer {
  private handle: unknown;
  readonly port: number;
  /** The address it listens on. */
  readonly host: string;

  private constructor(handle: unknown, host: string) {
    this.handle = handle;
    this.port = c.port(handle) as number;
    this.host = host;
  }

  /** Starts listening at once; throws the C side's one-line reason on a bad option. */
  static start(opts: NbdServerOptions): NbdServer {
    const err = Buffer.alloc(512);
    const h = c.start(nbdSpec(opts), err, err.length);
    if (!h) throw new Error(cString(err) || 'nbd server: start failed');
    return new NbdServer(h, opts.listen ?? '127.0.0.1');
  }

  /** host:port ([v6]:port). */
  get address(): string {
    return formatHostPort(this.host, this.port);
  }

  /** As an nbd:// URI of its default export. */
  get uri(): string {
    return `nbd://${this.address}`;
  }

  /** stop(), for callers that await a close. */
  async close(): Promise<void> {
    this.stop();
  }

  stats(): NbdServerStats {
    if (!this.handle) throw new Error('nbd server: stopped');
    const out = Buffer.alloc(4096);
    if (c.stats(this.handle, out, out.length) !== 0) throw new Error(cString(out));
    return JSON.parse(cString(out)) as NbdServerStats;
  }

  /** Closes every connection and frees the server; a second call does nothing. */
  stop(): void {
    if (!this.handle) return;
    c.stop(this.handle);
    this.handle = null;
  }
}
