// The chunk server's wire protocol, version 1 (docs/protocol.md). Mirrors
// native/src/sources/protocol.h: keep the two in sync. All integers little-endian.

export const MAGIC = 0x42414c46; // "FLAB"
export const VERSION = 1;
/** Largest READ/WRITE payload (16 MiB). */
export const MAX_LEN = 16 << 20;
export const REQ_HEADER_BYTES = 16;
export const RESP_HEADER_BYTES = 16;
export const HELLO_BODY_BYTES = 24;

export const Op = { HELLO: 1, READ: 2, WRITE: 3, PING: 4 } as const;
export type OpCode = (typeof Op)[keyof typeof Op];

export const Status = { OK: 0, BOUNDS: 1, BAD_OP: 2, TOO_LARGE: 3, MALFORMED: 4 } as const;
export type StatusCode = (typeof Status)[keyof typeof Status];

const STATUS_NAMES = ['OK', 'BOUNDS', 'BAD_OP', 'TOO_LARGE', 'MALFORMED'];
const OP_NAMES = ['', 'HELLO', 'READ', 'WRITE', 'PING'];

export function statusName(status: number): string {
  return STATUS_NAMES[status] ?? `UNKNOWN(${status})`;
}
export function opName(op: number): string {
  return OP_NAMES[op] || `UNKNOWN(${op})`;
}

/** A 16-byte request header: u8 op, u8 reserved[3], u32 len, u64 offset. */
export interface RequestHeader {
  op: number;
  /** The 3 reserved bytes as one little-endian number; must be 0. */
  reserved: number;
  len: number;
  offset: bigint;
}

/** A 16-byte response header: u8 status, u8 reserved[3], u32 len, u64 value. */
export interface ResponseHeader {
  status: number;
  reserved: number;
  len: number;
  /** HELLO: region bytes; otherwise the request's offset. */
  value: bigint;
}

export interface Hello {
  magic: number;
  version: number;
  regionBytes: bigint;
  seed: bigint;
}

function writeHeader(buf: Buffer, at: number, first: number, reserved: number, len: number, u64: bigint | number): void {
  buf.writeUInt8(first, at);
  buf.writeUIntLE(reserved, at + 1, 3);
  buf.writeUInt32LE(len, at + 4);
  buf.writeBigUInt64LE(BigInt(u64), at + 8);
}

/** Encode a request header, followed by payload if given (a WRITE's bytes). */
export function encodeRequest(h: { op: number; len?: number; offset?: bigint | number; reserved?: number }, payload?: Buffer): Buffer {
  const len = h.len ?? payload?.length ?? 0;
  const buf = Buffer.allocUnsafe(REQ_HEADER_BYTES + (payload?.length ?? 0));
  writeHeader(buf, 0, h.op, h.reserved ?? 0, len, h.offset ?? 0n);
  payload?.copy(buf, REQ_HEADER_BYTES);
  return buf;
}

export function decodeRequest(buf: Buffer, at = 0): RequestHeader {
  return {
    op: buf.readUInt8(at),
    reserved: buf.readUIntLE(at + 1, 3),
    len: buf.readUInt32LE(at + 4),
    offset: buf.readBigUInt64LE(at + 8),
  };
}

export function encodeResponse(h: { status: number; len?: number; value?: bigint | number; reserved?: number }): Buffer {
  const buf = Buffer.allocUnsafe(RESP_HEADER_BYTES);
  writeHeader(buf, 0, h.status, h.reserved ?? 0, h.len ?? 0, h.value ?? 0n);
  return buf;
}

export function decodeResponse(buf: Buffer, at = 0): ResponseHeader {
  return {
    status: buf.readUInt8(at),
    reserved: buf.readUIntLE(at + 1, 3),
    len: buf.readUInt32LE(at + 4),
    value: buf.readBigUInt64LE(at + 8),
  };
}

export function encodeHello(regionBytes: bigint | number, seed: bigint | number): Buffer {
  const buf = Buffer.allocUnsafe(HELLO_BODY_BYTES);
  buf.writeUInt32LE(MAGIC, 0);
  buf.writeUInt32LE(VERSION, 4);
  buf.writeBigUInt64LE(BigInt(regionBytes), 8);
  buf.writeBigUInt64LE(BigInt(seed), 16);
  return buf;
}

export function decodeHello(buf: Buffer, at = 0): Hello {
  return {
    magic: buf.readUInt32LE(at),
    version: buf.readUInt32LE(at + 4),
    regionBytes: buf.readBigUInt64LE(at + 8),
    seed: buf.readBigUInt64LE(at + 16),
  };
}

/**
 * A framed request with its verdict. The verdict depends only on the header
 * and the region size, so it is decided as soon as the header is in; the
 * operation itself runs later (when its emulated delay has passed).
 */
export interface ParsedRequest extends RequestHeader {
  /** OK, or the error status the request gets. */
  status: StatusCode;
  /** A WRITE's payload (also read, and dropped, when the WRITE is refused). */
  payload?: Buffer;
  /** TOO_LARGE: framing is lost, the connection closes after this answer. */
  closeAfter: boolean;
}

/**
 * Decide a request's status (docs/protocol.md), in this order: unknown op ->
 * BAD_OP; READ/WRITE len above MAX_LEN -> TOO_LARGE; reserved bytes set, or
 * len on HELLO/PING -> MALFORMED; offset + len beyond the region (in exact
 * integer arithmetic, so no overflow) -> BOUNDS.
 */
export function classify(h: RequestHeader, regionBytes: bigint): StatusCode {
  switch (h.op) {
    case Op.HELLO:
    case Op.PING:
      return h.reserved || h.len ? Status.MALFORMED : Status.OK;
    case Op.READ:
    case Op.WRITE:
      if (h.len > MAX_LEN) return Status.TOO_LARGE;
      if (h.reserved) return Status.MALFORMED;
      return h.offset + BigInt(h.len) > regionBytes ? Status.BOUNDS : Status.OK;
    default:
      return Status.BAD_OP;
  }
}

/**
 * Streaming request parser: feed it socket data in any split, get whole
 * requests back. Only WRITE carries a payload (of `len` bytes); once a
 * TOO_LARGE request is seen the stream cannot be framed any more and the
 * parser ignores everything after it.
 */
export class RequestParser {
  private readonly regionBytes: bigint;
  private header = Buffer.alloc(REQ_HEADER_BYTES);
  private headerFill = 0;
  private current: ParsedRequest | null = null; // waiting for its payload
  private payloadFill = 0;
  private dead = false;

  constructor(regionBytes: bigint | number) {
    this.regionBytes = BigInt(regionBytes);
  }

  /** True after a TOO_LARGE request: no further requests will be parsed. */
  get closed(): boolean {
    return this.dead;
  }

  /** Bytes of an unfinished request held so far (0 between requests). */
  get buffered(): number {
    return this.current ? REQ_HEADER_BYTES + this.payloadFill : this.headerFill;
  }

  push(chunk: Buffer): ParsedRequest[] {
    const out: ParsedRequest[] = [];
    let pos = 0;
    while (!this.dead && pos < chunk.length) {
      if (this.current) {
        // Payload of a WRITE.
        const req = this.current;
        const need = req.len - this.payloadFill;
        const take = Math.min(need, chunk.length - pos);
        if (this.payloadFill === 0 && take === req.len) {
          req.payload = chunk.subarray(pos, pos + take); // whole payload in one piece: no copy
        } else {
          if (this.payloadFill === 0) req.payload = Buffer.allocUnsafe(req.len);
          chunk.copy(req.payload!, this.payloadFill, pos, pos + take);
        }
        this.payloadFill += take;
        pos += take;
        if (this.payloadFill === req.len) {
          this.current = null;
          out.push(req);
        }
        continue;
      }
      let h: RequestHeader;
      if (this.headerFill === 0 && chunk.length - pos >= REQ_HEADER_BYTES) {
        h = decodeRequest(chunk, pos);
        pos += REQ_HEADER_BYTES;
      } else {
        const take = Math.min(REQ_HEADER_BYTES - this.headerFill, chunk.length - pos);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < REQ_HEADER_BYTES) break;
        this.headerFill = 0;
        h = decodeRequest(this.header);
      }
      const status = classify(h, this.regionBytes);
      const req: ParsedRequest = { ...h, status, closeAfter: status === Status.TOO_LARGE };
      if (status === Status.TOO_LARGE) {
        this.dead = true;
        out.push(req);
      } else if (h.op === Op.WRITE && h.len > 0) {
        this.current = req;
        this.payloadFill = 0;
      } else {
        if (h.op === Op.WRITE) req.payload = Buffer.alloc(0);
        out.push(req);
      }
    }
    return out;
  }
}

/** True for loopback addresses and names (127.0.0.0/8, ::1, localhost). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || /^::ffff:127\./.test(h);
}

/** host:port, with brackets around an IPv6 address. */
export function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
