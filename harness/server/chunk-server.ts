// The chunk server: holds a region whose contents are fill(seed, offset) and
// serves READ/WRITE/HELLO/PING over TCP (docs/protocol.md) with an emulated
// per-request latency.
//
// Each request is checked as soon as its header arrives (status) and runs when
// the event loop has it, in request order per connection: a READ copies the
// region as it is then, a WRITE applies its payload then. Without an RTT the
// event loop answers at once. With one, the answer leaves at the request's
// kernel receive time + rtt, sent by a C thread (delayed-io.ts): since every
// request has the same delay, answers leave in arrival order, as if the server
// slept `rtt` before every operation, like the original study's backend.
import net from 'node:net';
import { constants as bufferConstants } from 'node:buffer';
import { fill } from '../native.js';
import { DelayedConn, DelayedIoHub } from './delayed-io.js';
import { WARM_UP_READS, warmUpReads } from './warm-up.js';
import { HELLO_BODY_BYTES, Op, RESP_HEADER_BYTES, RequestParser, Status, encodeHello, formatHostPort, isLoopback, type ParsedRequest } from './protocol.js';

export { formatHostPort, isLoopback };

export interface ChunkServerOptions {
  /** Address to bind (default 127.0.0.1); a non-loopback address gets a warning. */
  host?: string;
  /** TCP port; 0 (default) picks a free one. */
  port?: number;
  /** Region size in bytes: > 0, a multiple of 8, at most buffer.constants.MAX_LENGTH. */
  regionBytes: number;
  seed: number | bigint;
  /** Emulated round-trip time added to every request, in ms (>= 0). */
  rttMs: number;
  /** Where warnings go (default stderr). */
  warn?: (line: string) => void;
  /** Keep each answer's timestamps (the last 4096), for trace(). */
  trace?: boolean;
}

/** One answered request's CLOCK_MONOTONIC times (ns). */
export interface RequestTrace {
  op: number;
  /** Its bytes reached the server: the kernel's receive time (rtt > 0) or the 'data' handler (rtt 0). The delay counts from here. */
  receivedNs: bigint;
  deadlineNs: bigint;
  /** Its answer left: rtt > 0, the C sender began to send it; rtt 0, the event loop's write returned. */
  writtenNs: bigint;
}

export interface ChunkServerCounters {
  /** Requests answered or waiting to be (every op and status). */
  requests: number;
  /** Region bytes sent to clients by READ. */
  bytesRead: number;
  /** Region bytes changed by WRITE. */
  bytesWritten: number;
  /** Requests answered with a status other than OK. */
  errors: number;
  /** Connections accepted so far. */
  connections: number;
}

// Backpressure: stop reading a connection while this much is queued for it.
const MAX_QUEUED_BYTES = 64 << 20; // WRITE payloads waiting for their delay
const MAX_QUEUED_REQUESTS = 1 << 16;
const MAX_UNSENT_BYTES = 32 << 20; // answers handed to the socket but not yet sent
const LATENESS_SAMPLES = 4096;

interface Queued {
  req: ParsedRequest;
  deadline: bigint;
}
const TRACE_ENTRIES = 4096;
/** A delayed answer: does its body share the region's memory (a zero-copy READ)? */
type SentMeta = Queued & { shared: boolean };

export class ChunkServer {
  readonly host: string;
  readonly port: number;
  readonly regionBytes: number;
  readonly seed: bigint;
  readonly rttMs: number;
  /** rttMs in ns: each answer's deadline is its request's receive time + this. */
  private readonly delayNs: bigint;
  /** The region's current contents (WRITE updates it). */
  get region(): Buffer {
    return this.contents;
  }
  private contents: Buffer;
  // READ answers are slices of `contents` (no copy: a 1 MiB copy into a fresh
  // Buffer costs page faults and a memcpy per answer, the server's largest CPU
  // cost at high throughput) until the first WRITE. A WRITE then must not change
  // answers already handed to a socket but not yet sent: if any are pending, the
  // region is cloned once, and from then on READs copy.
  private sharedAnswersPending = 0;
  private readsCopy = false;

  private readonly counts: ChunkServerCounters = { requests: 0, bytesRead: 0, bytesWritten: 0, errors: 0, connections: 0 };
  private readonly sockets = new Set<net.Socket>();
  // rtt > 0: every connection's I/O is timed in C (delayed-io.ts).
  private readonly hub: DelayedIoHub | null;
  private readonly delayed = new Set<DelayedConn<SentMeta>>();
  private readonly late = new Float64Array(LATENESS_SAMPLES); // ring of answer left - deadline, us (as RequestTrace.writtenNs)
  private lateCount = 0;
  private readonly traced: RequestTrace[] | null;
  private readonly warn: (line: string) => void;
  private closing: Promise<void> | null = null;

  private constructor(
    private readonly server: net.Server,
    region: Buffer,
    opts: ChunkServerOptions,
  ) {
    const addr = server.address() as net.AddressInfo;
    this.traced = opts.trace ? [] : null;
    this.warn = opts.warn ?? stderrLine;
    this.host = addr.address;
    this.port = addr.port;
    this.contents = region;
    this.regionBytes = opts.regionBytes;
    this.seed = BigInt(opts.seed);
    this.rttMs = opts.rttMs;
    this.delayNs = BigInt(Math.round(opts.rttMs * 1e6));
    this.hub = opts.rttMs > 0 ? DelayedIoHub.open() : null;
    server.on('connection', (s) => (this.hub ? this.onDelayedConnection(s, this.hub) : this.onConnection(s)));
  }

  static async start(opts: ChunkServerOptions): Promise<ChunkServer> {
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 0;
    const { regionBytes, rttMs } = opts;
    if (!Number.isSafeInteger(regionBytes) || regionBytes <= 0) {
      throw new Error(`region of ${regionBytes} bytes: give a positive size such as 64MiB`);
    }
    if (regionBytes % 8) throw new Error(`region of ${regionBytes} bytes is not a multiple of 8 bytes`);
    if (regionBytes > bufferConstants.MAX_LENGTH) {
      throw new Error(`region of ${regionBytes} bytes is larger than the chunk server can hold (${bufferConstants.MAX_LENGTH} bytes, Node's largest Buffer)`);
    }
    let seed: bigint;
    try {
      seed = BigInt(opts.seed);
    } catch {
      throw new Error(`seed ${opts.seed} is not an integer`);
    }
    if (seed < 0n || seed >= 1n << 64n) throw new Error(`seed ${opts.seed} is out of range (0 to 2^64-1)`);
    if (!Number.isFinite(rttMs) || rttMs < 0) throw new Error(`rtt ${rttMs} ms: give a number of ms >= 0`);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`port ${port} is out of range (0 to 65535)`);

    let region: Buffer;
    try {
      region = Buffer.allocUnsafe(regionBytes);
    } catch (e) {
      throw new Error(`cannot allocate the region (${regionBytes} bytes): ${(e as Error).message}`);
    }
    fill(region, seed, 0);

    // With an RTT, connections stay paused: delayed-io.ts reads them.
    const server = net.createServer({ noDelay: true, allowHalfOpen: true, pauseOnConnect: rttMs > 0 });
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        const where = formatHostPort(host, port);
        if (e.code === 'EADDRINUSE') reject(new Error(`cannot listen on ${where}: port ${port} in use`));
        else if (e.code === 'EADDRNOTAVAIL') reject(new Error(`cannot listen on ${where}: no such address on this machine`));
        else if (e.code === 'EACCES') reject(new Error(`cannot listen on ${where}: permission denied (ports below 1024 need root)`));
        else if (e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN') reject(new Error(`cannot listen on ${where}: unknown host '${host}'`));
        else reject(new Error(`cannot listen on ${where}: ${e.message}`));
      };
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (e) => (opts.warn ?? stderrLine)(`faultlab: chunk server error: ${e.message}`));
    const s = new ChunkServer(server, region, opts);
    if (!isLoopback(s.host)) {
      (opts.warn ?? stderrLine)(
        `faultlab: warning: the chunk server listens on ${formatHostPort(s.host, s.port)}, not loopback: ` +
          'anyone who can reach it can read and overwrite the region (there is no authentication)',
      );
    }
    return s;
  }

  /**
   * Answer `reads` READs of a client of our own before anything is measured
   * (warm-up.ts says why); the counters and lateness samples leave them out.
   * With an RTT the answers leave from C at their deadlines, so the event
   * loop's speed is not measured and there is nothing to warm.
   */
  async warmUp(reads = WARM_UP_READS): Promise<void> {
    if (this.rttMs > 0 || reads <= 0) return;
    const bytes = await warmUpReads(this.host, this.port, this.regionBytes, reads);
    this.counts.requests -= reads;
    this.counts.bytesRead -= bytes;
    this.counts.connections--;
    this.resetLateness();
  }

  /** host:port to connect to. */
  get address(): string {
    return formatHostPort(this.host, this.port);
  }

  get requests(): number {
    return this.counts.requests;
  }
  get bytesRead(): number {
    return this.counts.bytesRead;
  }
  get bytesWritten(): number {
    return this.counts.bytesWritten;
  }
  /** Connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }
  /** A snapshot of all counters. */
  get counters(): ChunkServerCounters {
    return { ...this.counts };
  }

  /**
   * How late answers left relative to their deadline (received + rtt), in us,
   * over the last answers (up to 4096): with an RTT, from the deadline to the
   * C sender's send (the emulation's own precision); without, from the 'data'
   * handler to the write's return (the event loop's path).
   */
  lateness(): { p50Us: number; p95Us: number; maxUs: number; samples: number } {
    this.reapAll();
    const n = Math.min(this.lateCount, LATENESS_SAMPLES);
    const v = Array.from(this.late.subarray(0, n)).sort((a, b) => a - b);
    const q = (f: number) => (n ? v[Math.min(n - 1, Math.floor(f * n))] : NaN);
    return { p50Us: q(0.5), p95Us: q(0.95), maxUs: n ? v[n - 1] : NaN, samples: n };
  }

  /** With the trace option: the last answers' timestamps, oldest first. */
  trace(): RequestTrace[] {
    this.reapAll();
    return [...(this.traced ?? [])];
  }

  /**
   * Resolves once every answer handed to a delayed connection's sender has been
   * reported sent (at most timeoutMs): a client can have an answer before the
   * sender thread has recorded it, so lateness() and trace() read right after
   * a client's last answer may miss it.
   */
  async settled(timeoutMs = 1000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      this.reapAll();
      if ([...this.delayed].every((c) => c.unsent === 0) || Date.now() > end) return;
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Forget lateness samples (e.g. after a warm-up). */
  resetLateness(): void {
    this.reapAll();
    this.lateCount = 0;
  }

  private recordAnswer({ req, deadline }: Queued, written: bigint): void {
    this.late[this.lateCount++ % LATENESS_SAMPLES] = Number(written - deadline) / 1000;
    if (!this.traced) return;
    if (this.traced.length === TRACE_ENTRIES) this.traced.shift();
    this.traced.push({ op: req.op, receivedNs: deadline - this.delayNs, deadlineNs: deadline, writtenNs: written });
  }

  /** Stop listening, drop every connection (pending answers are discarded). */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = new Promise<void>((resolve) => {
        this.server.close(() => resolve());
        this.hub?.close(); // detaches every delayed connection first
        for (const s of this.sockets) s.destroy();
      });
    }
    return this.closing;
  }

  /**
   * A connection without an RTT: the event loop reads, runs and answers each
   * request at once; answers wait in `backlog` only while the client does not
   * read (backpressure).
   */
  private onConnection(sock: net.Socket): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    this.counts.connections++;
    this.sockets.add(sock);
    sock.setNoDelay(true);
    const parser = new RequestParser(this.regionBytes);
    const backlog: Queued[] = [];
    let head = 0; // backlog[head] is the next to answer
    let queuedBytes = 0; // WRITE payloads in the backlog
    let paused = false;
    let clientEnded = false;
    let closed = false;
    let corked = false;
    const released: Queued[] = [];

    const updateFlow = () => {
      const waiting = backlog.length - head;
      const full = queuedBytes > MAX_QUEUED_BYTES || waiting > MAX_QUEUED_REQUESTS || sock.writableLength > MAX_UNSENT_BYTES;
      if (full && !paused) {
        paused = true;
        sock.pause();
      } else if (!full && paused && !parser.closed) {
        paused = false;
        sock.resume();
      }
    };

    // Answer one request; false: stop for now (the client is not reading, or the connection ends).
    const answer = (q: Queued): boolean => {
      const { req } = q;
      released.push(q);
      if (!corked) {
        // Answers of one 'data' event (pipelined requests) leave in one write.
        corked = true;
        sock.cork();
        process.nextTick(() => {
          corked = false;
          sock.uncork();
          // Lateness counts until the write has returned (on loopback: the
          // answer is in the client's socket), the event loop's own path included.
          const written = nowNs();
          for (const r of released) this.recordAnswer(r, written);
          released.length = 0;
          updateFlow();
        });
      }
      queuedBytes -= req.payload?.length ?? 0;
      const out = this.execute(req);
      if (Array.isArray(out)) {
        // [header, slice of the region]: count the slice until the socket has taken it.
        this.sharedAnswersPending++;
        sock.write(out[0]);
        sock.write(out[1], () => this.sharedAnswersPending--);
      } else {
        sock.write(out);
      }
      if (req.closeAfter || (clientEnded && head === backlog.length)) {
        sock.destroySoon(); // end, then close once the answer is out
        return false;
      }
      // While the client does not read, keep answers queued; 'drain' resumes.
      return sock.writableLength <= MAX_UNSENT_BYTES;
    };
    const flush = () => {
      while (!closed && head < backlog.length && !sock.destroyed && sock.writable) {
        if (!answer(backlog[head++])) break;
      }
      if (head === backlog.length) backlog.length = head = 0;
    };

    sock.on('data', (chunk: Buffer) => {
      const reqs = parser.push(chunk);
      const received = nowNs();
      for (const req of reqs) {
        this.counts.requests++;
        queuedBytes += req.payload?.length ?? 0;
        backlog.push({ req, deadline: received });
      }
      flush();
      if (parser.closed) {
        // Framing is lost (TOO_LARGE): read nothing more; its answer goes out, then the close.
        paused = true;
        sock.pause();
      }
      updateFlow();
    });
    sock.on('drain', () => {
      flush();
      updateFlow();
    });
    sock.on('end', () => {
      // The client half-closed: answer what is pending, then close.
      clientEnded = true;
      if (head === backlog.length) sock.destroySoon();
    });
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      closed = true;
      backlog.length = 0;
      this.sockets.delete(sock);
    });
  }

  /** Answers the delayed connections' senders have sent since the last look: lateness, trace, shared slices released. */
  private reapAll(): void {
    for (const conn of this.delayed) conn.reap(this.onDelayedSent);
  }

  private readonly onDelayedSent = (q: SentMeta, written: bigint | null): void => {
    if (q.shared) this.sharedAnswersPending--;
    if (written !== null) this.recordAnswer(q, written);
  };

  /**
   * A connection with an RTT: each request runs as soon as the event loop has
   * it, and its answer leaves at the kernel's receive time + rtt (sent by C).
   * Running at once instead of at the deadline keeps the original study's
   * order: every request on the server has the same delay, so deadlines are in
   * arrival order, and a READ still sees exactly the WRITEs that arrived before it.
   */
  private onDelayedConnection(sock: net.Socket, hub: DelayedIoHub): void {
    if (this.closing) {
      sock.destroy();
      return;
    }
    this.counts.connections++;
    this.sockets.add(sock);
    const parser = new RequestParser(this.regionBytes);
    let conn: DelayedConn<SentMeta>;
    const drop = () => {
      conn.reap(this.onDelayedSent);
      conn.detach((q) => q.shared && this.sharedAnswersPending--); // unsent slices no longer hold the region
      sock.destroy();
    };
    try {
      conn = hub.attach(sock, {
        data: (bytes, receivedNs) => {
          conn.reap(this.onDelayedSent);
          if (parser.closed) return; // framing lost: its answer is out or queued, then the close
          const deadline = receivedNs + this.delayNs;
          for (const req of parser.push(bytes)) {
            this.counts.requests++;
            const answer = this.execute(req);
            // The sender copies up to 256 bytes of head; a longer answer's rest is its body.
            const [head, body] = Array.isArray(answer)
              ? answer
              : answer.length > 256
                ? [answer.subarray(0, RESP_HEADER_BYTES), answer.subarray(RESP_HEADER_BYTES)]
                : [answer, null];
            const shared = Array.isArray(answer);
            if (shared) this.sharedAnswersPending++;
            if (!conn.send(deadline, head, body, { req, deadline, shared })) {
              if (shared) this.sharedAnswersPending--;
              return;
            }
            if (req.closeAfter) return conn.finish();
          }
        },
        end: () => conn.finish(), // answer what is pending, then close
        gone: drop,
      });
    } catch (e) {
      this.warn(`faultlab: chunk server: dropping a connection: ${(e as Error).message}`);
      this.sockets.delete(sock);
      sock.destroy();
      return;
    }
    this.delayed.add(conn);
    sock.on('error', () => {}); // not read or written by Node: the hub reports failures
    sock.on('close', () => {
      this.delayed.delete(conn);
      this.sockets.delete(sock);
    });
  }

  /** Run one request now and build its answer: one buffer, or [header, slice of the region]. */
  private execute(req: ParsedRequest): Buffer | [Buffer, Buffer] {
    if (req.status !== Status.OK) {
      this.counts.errors++;
      return header(req.status, 0, req.offset);
    }
    switch (req.op) {
      case Op.HELLO: {
        const out = Buffer.allocUnsafe(RESP_HEADER_BYTES + HELLO_BODY_BYTES);
        writeHeaderInto(out, Status.OK, HELLO_BODY_BYTES, BigInt(this.regionBytes));
        encodeHello(this.regionBytes, this.seed).copy(out, RESP_HEADER_BYTES);
        return out;
      }
      case Op.READ: {
        const off = Number(req.offset);
        this.counts.bytesRead += req.len;
        if (!this.readsCopy) return [header(Status.OK, req.len, req.offset), this.contents.subarray(off, off + req.len)];
        const out = Buffer.allocUnsafe(RESP_HEADER_BYTES + req.len);
        writeHeaderInto(out, Status.OK, req.len, req.offset);
        this.contents.copy(out, RESP_HEADER_BYTES, off, off + req.len);
        return out;
      }
      case Op.WRITE: {
        if (!this.readsCopy) {
          this.reapAll(); // slices the delayed senders have sent no longer count
          this.readsCopy = true;
          if (this.sharedAnswersPending > 0) this.contents = Buffer.from(this.contents); // queued answers keep the old bytes
        }
        req.payload!.copy(this.contents, Number(req.offset));
        this.counts.bytesWritten += req.len;
        return header(Status.OK, 0, req.offset);
      }
      default: // PING
        return header(Status.OK, 0, req.offset);
    }
  }
}

function writeHeaderInto(buf: Buffer, status: number, len: number, value: bigint): void {
  buf.writeUInt32LE(status, 0); // status byte + 3 zero reserved bytes
  buf.writeUInt32LE(len, 4);
  buf.writeBigUInt64LE(value, 8);
}

function header(status: number, len: number, value: bigint): Buffer {
  const buf = Buffer.allocUnsafe(RESP_HEADER_BYTES);
  writeHeaderInto(buf, status, len, value);
  return buf;
}

/** CLOCK_MONOTONIC in ns, the C side's clock (fl_now). */
const nowNs = (): bigint => process.hrtime.bigint();

function stderrLine(line: string): void {
  process.stderr.write(line + '\n');
}
