// A small TypeScript client for the chunk server, used by the tests (protocol,
// latency, fault injection). The RTT every result row records is measured by
// the C tcp source instead (native.ts rttProbeNative), the client the
// strategies fetch with.
import net from 'node:net';
import {
  HELLO_BODY_BYTES,
  MAGIC,
  Op,
  RESP_HEADER_BYTES,
  Status,
  VERSION,
  decodeHello,
  decodeResponse,
  encodeRequest,
  formatHostPort,
  statusName,
  type Hello,
  type ResponseHeader,
} from './protocol.js';

export interface Answer {
  header: ResponseHeader;
  body: Buffer;
}

interface Pending {
  resolve: (a: Answer) => void;
  reject: (e: Error) => void;
}

/**
 * One connection to a chunk server. Requests may be pipelined: answers are
 * matched to requests in order. Any socket error, timeout or close rejects
 * everything pending.
 */
export class ChunkClient {
  private pending: Pending[] = [];
  private buf: Buffer = Buffer.alloc(0);
  private failure: Error | null = null;

  private constructor(
    readonly socket: net.Socket,
    readonly where: string,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.fail(new Error(`${where}: ${e.message}`)));
    socket.on('timeout', () => this.pending.length && this.fail(new Error(`${where}: no answer within ${socket.timeout} ms`)));
    socket.on('close', () => this.fail(new Error(`${where}: server closed the connection`)));
  }

  /** Connect; timeoutMs bounds the connect and every later wait for an answer. */
  static connect(host: string, port: number, timeoutMs = 5000): Promise<ChunkClient> {
    const where = formatHostPort(host, port);
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host, port });
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new Error(`cannot connect to ${where}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot connect to ${where}: ${e.message}`));
      });
      sock.once('connect', () => {
        clearTimeout(timer);
        sock.removeAllListeners('error');
        sock.setTimeout(timeoutMs);
        resolve(new ChunkClient(sock, where));
      });
    });
  }

  /** Send raw bytes (a test can split or corrupt requests) and expect `answers` answers. */
  sendRaw(bytes: Buffer, answers = 1): Promise<Answer>[] {
    const out: Promise<Answer>[] = [];
    for (let i = 0; i < answers; i++) {
      out.push(
        new Promise<Answer>((resolve, reject) => {
          if (this.failure) reject(this.failure);
          else this.pending.push({ resolve, reject });
        }),
      );
    }
    if (!this.failure) this.socket.write(bytes);
    return out;
  }

  /** One request; resolves with the answer (any status). */
  request(op: number, offset: bigint | number = 0, len = 0, payload?: Buffer): Promise<Answer> {
    return this.sendRaw(encodeRequest({ op, offset, len: payload ? payload.length : len }, payload))[0];
  }

  async hello(): Promise<Hello> {
    const a = await this.request(Op.HELLO);
    if (a.header.status !== Status.OK || a.body.length !== HELLO_BODY_BYTES) {
      throw new Error(`${this.where} answered HELLO with status ${a.header.status} (${statusName(a.header.status)})`);
    }
    const h = decodeHello(a.body);
    if (h.magic !== MAGIC) throw new Error(`${this.where} is not a faultlab chunk server (bad magic 0x${h.magic.toString(16)})`);
    if (h.version !== VERSION) throw new Error(`${this.where} speaks protocol version ${h.version}, expected ${VERSION}`);
    return h;
  }

  async ping(): Promise<void> {
    const a = await this.request(Op.PING);
    if (a.header.status !== Status.OK) throw new Error(`${this.where} answered PING with status ${statusName(a.header.status)}`);
  }

  close(): void {
    this.failure ??= new Error(`${this.where}: connection closed`);
    this.socket.destroy();
  }

  private fail(e: Error): void {
    if (!this.failure) this.failure = e;
    this.socket.destroy();
    const p = this.pending;
    this.pending = [];
    for (const x of p) x.reject(this.failure);
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.buf.length < RESP_HEADER_BYTES) return;
      const header = decodeResponse(this.buf);
      // Only READ and HELLO answers carry a body, and only with status OK.
      const bodyLen = header.status === Status.OK ? header.len : 0;
      if (this.buf.length < RESP_HEADER_BYTES + bodyLen) return;
      const body = this.buf.subarray(RESP_HEADER_BYTES, RESP_HEADER_BYTES + bodyLen);
      this.buf = this.buf.subarray(RESP_HEADER_BYTES + bodyLen);
      const p = this.pending.shift();
      if (!p) {
        this.fail(new Error(`${this.where}: answer without a request`));
        return;
      }
      p.resolve({ header, body });
    }
  }
}

export interface RttStats {
  medianMs: number;
  p5Ms: number;
  p95Ms: number;
  minMs: number;
  maxMs: number;
  samples: number;
}

/** Quantile q in [0,1] of sorted values, linear between ranks. */
export function quantile(sorted: number[], q: number): number {
  if (!sorted.length) return NaN;
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/**
 * Round trips of empty PING requests on one fresh connection, one at a time
 * (after a short warm-up), timed with the monotonic clock. The server's HELLO
 * is checked first, so a wrong address fails clearly.
 */
export async function measureRtt(host: string, port: number, samples: number, opts: { timeoutMs?: number; warmup?: number } = {}): Promise<RttStats> {
  if (!Number.isInteger(samples) || samples < 1) throw new Error(`samples must be a positive integer, got ${samples}`);
  const client = await ChunkClient.connect(host, port, opts.timeoutMs ?? 5000);
  try {
    await client.hello();
    const warmup = opts.warmup ?? Math.min(3, samples);
    for (let i = 0; i < warmup; i++) await client.ping();
    const ms: number[] = [];
    for (let i = 0; i < samples; i++) {
      const t0 = process.hrtime.bigint();
      await client.ping();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    ms.sort((a, b) => a - b);
    return {
      medianMs: quantile(ms, 0.5),
      p5Ms: quantile(ms, 0.05),
      p95Ms: quantile(ms, 0.95),
      minMs: ms[0],
      maxMs: ms[ms.length - 1],
      samples,
    };
  } finally {
    client.close();
  }
}
