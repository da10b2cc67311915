// The NBD protocol's numbers and messages for the tests' own NBD peers (the
// misbehaving server test/fault-server.ts, the client of test/server.test.ts
// and test/fuzz.test.ts): as native/src/server/nbd_proto.h, big-endian.
import net from 'node:net';

export const NBD_MAGIC = 0x4e42444d41474943n; // "NBDMAGIC"
export const IHAVEOPT = 0x49484156454f5054n; // "IHAVEOPT"
export const REP_MAGIC = 0x3e889045565a9n;
export const REQUEST_MAGIC = 0x25609513;
export const SIMPLE_REPLY_MAGIC = 0x67446698;

export const FLAG_FIXED_NEWSTYLE = 1;
export const FLAG_NO_ZEROES = 2;
export const FLAG_HAS_FLAGS = 1;
export const FLAG_SEND_FLUSH = 4;

export const Opt = { EXPORT_NAME: 1, ABORT: 2, LIST: 3, STARTTLS: 5, INFO: 6, GO: 7, STRUCTURED_REPLY: 8 } as const;
export const Rep = { ACK: 1, SERVER: 2, INFO: 3, ERR_UNSUP: 0x80000001, ERR_INVALID: 0x80000003, ERR_UNKNOWN: 0x80000006 } as const;
export const Info = { EXPORT: 0, NAME: 1, DESCRIPTION: 2, BLOCK_SIZE: 3 } as const;
export const Cmd = { READ: 0, WRITE: 1, DISC: 2, FLUSH: 3, TRIM: 4, CACHE: 5, WRITE_ZEROES: 6, BLOCK_STATUS: 7 } as const;
export const Err = { EPERM: 1, EIO: 5, ENOMEM: 12, EINVAL: 22, ENOSPC: 28 } as const;

export const GREETING_BYTES = 18;
export const OPT_HEADER_BYTES = 16;
export const OPT_REPLY_BYTES = 20;
export const REQUEST_BYTES = 28;
export const REPLY_BYTES = 16;
export const MAX_BLOCK = 32 << 20;

export function greeting(): Buffer {
  const b = Buffer.alloc(GREETING_BYTES);
  b.writeBigUInt64BE(NBD_MAGIC, 0);
  b.writeBigUInt64BE(IHAVEOPT, 8);
  b.writeUInt16BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES, 16);
  return b;
}

export function option(opt: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(OPT_HEADER_BYTES);
  h.writeBigUInt64BE(IHAVEOPT, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(data.length, 12);
  return Buffer.concat([h, data]);
}

export function optionReply(opt: number, type: number, data: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(OPT_REPLY_BYTES);
  h.writeBigUInt64BE(REP_MAGIC, 0);
  h.writeUInt32BE(opt, 8);
  h.writeUInt32BE(type >>> 0, 12);
  h.writeUInt32BE(data.length, 16);
  return Buffer.concat([h, data]);
}

/** NBD_OPT_GO / NBD_OPT_INFO data: the export name and the information asked for. */
export function goData(name = '', infos: number[] = [Info.BLOCK_SIZE]): Buffer {
  const n = Buffer.from(name);
  const b = Buffer.alloc(4 + n.length + 2 + 2 * infos.length);
  b.writeUInt32BE(n.length, 0);
  n.copy(b, 4);
  b.writeUInt16BE(infos.length, 4 + n.length);
  infos.forEach((x, i) => b.writeUInt16BE(x, 6 + n.length + 2 * i));
  return b;
}

export function request(type: number, cookie: bigint, offset: bigint | number, len: number, flags = 0): Buffer {
  const b = Buffer.alloc(REQUEST_BYTES);
  b.writeUInt32BE(REQUEST_MAGIC, 0);
  b.writeUInt16BE(flags, 4);
  b.writeUInt16BE(type, 6);
  b.writeBigUInt64BE(cookie, 8);
  b.writeBigUInt64BE(BigInt(offset), 16);
  b.writeUInt32BE(len >>> 0, 24);
  return b;
}

export interface Request {
  magic: number;
  flags: number;
  type: number;
  cookie: bigint;
  offset: bigint;
  len: number;
}

export function decodeRequest(b: Buffer): Request {
  return {
    magic: b.readUInt32BE(0),
    flags: b.readUInt16BE(4),
    type: b.readUInt16BE(6),
    cookie: b.readBigUInt64BE(8),
    offset: b.readBigUInt64BE(16),
    len: b.readUInt32BE(24),
  };
}

export function simpleReply(error: number, cookie: bigint): Buffer {
  const b = Buffer.alloc(REPLY_BYTES);
  b.writeUInt32BE(SIMPLE_REPLY_MAGIC, 0);
  b.writeUInt32BE(error, 4);
  b.writeBigUInt64BE(cookie, 8);
  return b;
}

/** A byte stream read in exact pieces, with a timeout per piece. */
export class Reader {
  private buf = Buffer.alloc(0);
  private readonly waiters = new Set<() => void>();
  private ended: Error | null = null;

  constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      for (const w of [...this.waiters]) w();
    });
    const end = (e?: Error) => {
      this.ended ??= e ?? new Error('closed by the server');
      for (const w of [...this.waiters]) w();
    };
    sock.on('end', () => end());
    sock.on('close', () => end());
    sock.on('error', (e) => end(e));
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.waiters.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.waiters.add(done);
    });
  }

  /** Bytes received and not yet taken. */
  get pending(): number {
    return this.buf.length;
  }

  async take(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw new Error(`${this.ended.message} (wanted ${n} bytes, had ${this.buf.length})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout: wanted ${n} bytes, had ${this.buf.length}`);
      await this.wait(left);
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Resolves true once the peer closed (after skipping what it sent), false after timeoutMs. */
  async closed(timeoutMs = 3000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) return false;
      await this.wait(left);
      this.buf = Buffer.alloc(0);
    }
    return true;
  }
}

export function connect(port: number, host = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port }, () => resolve(s));
    s.setNoDelay(true);
    s.once('error', reject);
  });
}

export interface Handshake {
  size: bigint;
  tflags: number;
  minBlock?: number;
  prefBlock?: number;
  maxBlock?: number;
  description?: string;
}

/** A small NBD client: connect, fixed newstyle, NBD_OPT_GO asking for block sizes and the description. */
export class NbdClient {
  private cookie = 1n;
  private constructor(
    readonly sock: net.Socket,
    readonly r: Reader,
    readonly info: Handshake,
  ) {}

  static async open(port: number, name = '', host = '127.0.0.1'): Promise<NbdClient> {
    const sock = await connect(port, host);
    const r = new Reader(sock);
    try {
      const g = await r.take(GREETING_BYTES);
      if (g.readBigUInt64BE(0) !== NBD_MAGIC || g.readBigUInt64BE(8) !== IHAVEOPT) throw new Error('bad greeting');
      const flags = Buffer.alloc(4);
      flags.writeUInt32BE(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
      sock.write(Buffer.concat([flags, option(Opt.GO, goData(name, [Info.BLOCK_SIZE, Info.DESCRIPTION]))]));
      const info: Handshake = { size: -1n, tflags: 0 };
      for (;;) {
        const h = await r.take(OPT_REPLY_BYTES);
        const type = h.readUInt32BE(12);
        const d = await r.take(h.readUInt32BE(16));
        if (type === Rep.ACK) break;
        if (type !== Rep.INFO) throw new Error(`NBD_OPT_GO refused: reply type 0x${type.toString(16)} ${d.toString()}`);
        const kind = d.readUInt16BE(0);
        if (kind === Info.EXPORT) [info.size, info.tflags] = [d.readBigUInt64BE(2), d.readUInt16BE(10)];
        else if (kind === Info.BLOCK_SIZE) [info.minBlock, info.prefBlock, info.maxBlock] = [d.readUInt32BE(2), d.readUInt32BE(6), d.readUInt32BE(10)];
        else if (kind === Info.DESCRIPTION) info.description = d.subarray(2).toString();
      }
      return new NbdClient(sock, r, info);
    } catch (e) {
      sock.destroy();
      throw e;
    }
  }

  /** One request and its simple reply: the error and, for a READ without one, its data. */
  async call(type: number, offset: bigint | number, len: number, payload?: Buffer, timeoutMs = 5000): Promise<{ error: number; data: Buffer }> {
    const cookie = this.cookie++;
    this.sock.write(payload ? Buffer.concat([request(type, cookie, offset, len), payload]) : request(type, cookie, offset, len));
    const h = await this.r.take(REPLY_BYTES, timeoutMs);
    if (h.readUInt32BE(0) !== SIMPLE_REPLY_MAGIC) throw new Error(`bad reply magic 0x${h.readUInt32BE(0).toString(16)}`);
    if (h.readBigUInt64BE(8) !== cookie) throw new Error(`reply cookie ${h.readBigUInt64BE(8)}, expected ${cookie}`);
    const error = h.readUInt32BE(4);
    const data = type === Cmd.READ && error === 0 ? Buffer.from(await this.r.take(len, timeoutMs)) : Buffer.alloc(0);
    return { error, data };
  }

  read(offset: bigint | number, len: number) {
    return this.call(Cmd.READ, offset, len);
  }

  write(offset: bigint | number, data: Buffer) {
    return this.call(Cmd.WRITE, offset, data.length, data);
  }

  flush(timeoutMs = 5000) {
    return this.call(Cmd.FLUSH, 0, 0, undefined, timeoutMs);
  }

  /** NBD_CMD_DISC, then close. */
  close(): void {
    if (!this.sock.destroyed) this.sock.end(request(Cmd.DISC, this.cookie++, 0, 0));
  }
}
