// Fuzzing faultlab's NBD server (native/src/server, started through
// harness/server/nbd-server.ts) for a bounded time: random bytes, fuzzed
// handshakes (options of every kind, mutated, with random data) and mutated
// requests after a good handshake, whole or split in random pieces, over real
// sockets. Whatever it receives, the server must not crash (it runs in this
// process), must send a well-formed greeting, well-formed option replies and
// well-formed simple replies (each with the cookie of a request sent), must
// never answer a READ with bytes outside the export or other than
// fill(seed, offset), and must keep serving good requests afterwards.
// The seed is printed; FAULTLAB_FUZZ_SEED=N replays it.
//
// The contents must stay fill(seed, offset) for the check to hold, so the
// fuzzer never lets a WRITE through with other bytes: mutations never produce
// command 1 (WRITE), and the only WRITEs sent are whole, correct ones, or out
// of range (refused with ENOSPC, payload dropped).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { NbdServer, rttUs } from '../harness/server/nbd-server.js';
import { fill } from '../harness/native.js';
import {
  Cmd,
  GREETING_BYTES,
  IHAVEOPT,
  NBD_MAGIC,
  NbdClient,
  OPT_REPLY_BYTES,
  Opt,
  REPLY_BYTES,
  REP_MAGIC,
  Rep,
  SIMPLE_REPLY_MAGIC,
  FLAG_FIXED_NEWSTYLE,
  FLAG_NO_ZEROES,
  decodeRequest,
  goData,
  option,
  request,
  type Request,
} from './nbd-wire.js';

const REGION = 64 << 10;
const SEED = 11;
const FUZZ_MS = 5000;
const RNG_SEED = Number(process.env.FAULTLAB_FUZZ_SEED ?? Date.now() % 1e9);

/** xorshift32: reproducible with FAULTLAB_FUZZ_SEED. */
function rng(seed: number) {
  let s = seed >>> 0 || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  const int = (n: number) => next() % n;
  return { next, int, pick: <T>(xs: readonly T[]) => xs[int(xs.length)] };
}
type Rng = ReturnType<typeof rng>;

function expected(offset: number, len: number): Buffer {
  const start = offset - (offset % 8);
  const b = Buffer.alloc(Math.ceil((offset + len) / 8) * 8 - start);
  fill(b, SEED, start);
  return b.subarray(offset - start, offset - start + len);
}

const LENS = [0, 1, 7, 8, 15, 16, 4095, 4096, 4097, REGION - 8, REGION, REGION + 1, 32 << 20, (32 << 20) + 1, 0xffffffff];
const OFFSETS = [0n, 1n, 8n, 4096n, BigInt(REGION - 8), BigInt(REGION - 1), BigInt(REGION), BigInt(REGION + 8), 2n ** 63n, 2n ** 64n - 8n, 2n ** 64n - 1n];

function garbage(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r.int(256);
  return b;
}

/** A valid request (a WRITE carries the export's own bytes, so it changes nothing). */
function validRequest(r: Rng, cookie: bigint): Buffer {
  const type = r.pick([Cmd.READ, Cmd.READ, Cmd.READ, Cmd.FLUSH, Cmd.WRITE]);
  if (type === Cmd.FLUSH) return request(type, cookie, 0, 0);
  const len = 1 + (r.int(2) ? r.int(4096) : r.int(REGION));
  const offset = r.int(REGION - len + 1);
  return type === Cmd.READ ? request(type, cookie, offset, len) : Buffer.concat([request(type, cookie, offset, len), expected(offset, len)]);
}

/** A request header with one to three mutations; never command 1 (WRITE), the cookie kept. */
function mutatedRequest(r: Rng, cookie: bigint): Buffer {
  const h = request(
    r.pick([Cmd.READ, Cmd.FLUSH, Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS, Cmd.DISC, 8, 255]),
    cookie,
    r.int(REGION),
    r.int(8193),
  );
  for (let m = 1 + r.int(3); m > 0; m--) {
    switch (r.int(6)) {
      case 0:
        h[r.int(8)] ^= 1 << r.int(8); // magic, flags, type
        break;
      case 1:
        h.writeUInt32BE(r.pick(LENS), 24);
        break;
      case 2:
        h.writeBigUInt64BE(r.pick(OFFSETS), 16);
        break;
      case 3:
        h.writeUInt16BE(1 + r.int(0xffff), 4); // command flags
        break;
      case 4:
        h.writeUInt16BE(r.int(0x10000), 6);
        break;
      default:
        h[24 + r.int(4)] = r.int(256);
    }
  }
  if (h.readUInt16BE(6) === Cmd.WRITE) h.writeUInt16BE(Cmd.WRITE | 0x100, 6);
  return h;
}

/** A fuzzed option: any code but EXPORT_NAME (its reply is no option reply), random or well-formed data, sometimes a bad magic. */
function fuzzedOption(r: Rng): Buffer {
  let code = r.pick([Opt.GO, Opt.INFO, Opt.LIST, Opt.ABORT, Opt.STRUCTURED_REPLY, Opt.STARTTLS, 42, r.int(0x10000), r.next()]);
  if (code === Opt.EXPORT_NAME) code = Opt.LIST;
  const data = r.int(2) ? goData(r.int(3) ? '' : r.pick(['faultlab', 'other', 'x'.repeat(300)]), [r.int(5), r.int(5)]) : garbage(r, r.int(64));
  if (r.int(6) === 0 && data.length >= 4) data.writeUInt32BE(r.next(), 0); // a name length past the data
  const b = option(code, data);
  if (r.int(20) === 0) b[r.int(8)] ^= 1; // a bad option magic
  if (r.int(30) === 0) b.writeUInt32BE(r.pick([17 << 10, 0xffffffff]), 12); // too much data announced
  return b;
}

interface Check {
  replies: number;
  readBytes: number;
  problems: string[];
}

/** Read `stream` as a client must: the greeting, option replies, then (after a GO's ACK) simple replies to `sent`. */
function checkStream(stream: Buffer, sent: Map<bigint, Request> | null, c: Check): void {
  if (stream.length === 0) return; // closed before the greeting was read (an early reset): nothing to check
  if (stream.length < GREETING_BYTES || stream.readBigUInt64BE(0) !== NBD_MAGIC || stream.readBigUInt64BE(8) !== IHAVEOPT) {
    c.problems.push(`bad greeting ${stream.subarray(0, 18).toString('hex')}`);
    return;
  }
  let pos = GREETING_BYTES;
  let trans = false;
  while (!trans && stream.length - pos >= OPT_REPLY_BYTES) {
    if (stream.readBigUInt64BE(pos) !== REP_MAGIC) return void c.problems.push(`option reply magic 0x${stream.readBigUInt64BE(pos).toString(16)}`);
    const opt = stream.readUInt32BE(pos + 8);
    const type = stream.readUInt32BE(pos + 12);
    const len = stream.readUInt32BE(pos + 16);
    if (stream.length - pos - OPT_REPLY_BYTES < len) return void c.problems.push(`option reply announces ${len} bytes, fewer arrived`);
    pos += OPT_REPLY_BYTES + len;
    c.replies++;
    if (type === Rep.INFO && len < 2) c.problems.push('NBD_REP_INFO without its type');
    if (opt === Opt.GO && type === Rep.ACK) trans = sent !== null;
  }
  while (trans && stream.length - pos >= REPLY_BYTES) {
    if (stream.readUInt32BE(pos) !== SIMPLE_REPLY_MAGIC) return void c.problems.push(`reply magic 0x${stream.readUInt32BE(pos).toString(16)}`);
    const err = stream.readUInt32BE(pos + 4);
    const cookie = stream.readBigUInt64BE(pos + 8);
    pos += REPLY_BYTES;
    c.replies++;
    const req = sent!.get(cookie);
    if (!req) return void c.problems.push(`a reply with cookie ${cookie}, which no request had`);
    sent!.delete(cookie);
    if (req.type !== Cmd.READ || err !== 0) continue;
    if (req.offset + BigInt(req.len) > BigInt(REGION) || req.len === 0) c.problems.push(`READ of ${req.len} at ${req.offset} answered without an error`);
    if (stream.length - pos < req.len) return void c.problems.push(`READ reply with ${stream.length - pos} of its ${req.len} bytes`);
    const body = stream.subarray(pos, pos + req.len);
    pos += req.len;
    c.readBytes += req.len;
    if (!body.equals(expected(Number(req.offset), req.len))) c.problems.push(`READ reply at ${req.offset} (${req.len} bytes) has wrong bytes`);
  }
  if (pos !== stream.length) c.problems.push(`${stream.length - pos} stray bytes after the last whole reply`);
}

/** One connection: send `parts` (each written separately, sometimes after a pause), half-close, collect everything until the server closes. */
function session(server: NbdServer, parts: Buffer[], r: Rng): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('the server neither answered nor closed within 5 s of the client closing'));
    }, 5000);
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {}); // a reset after a violation is fine: 'close' follows
    sock.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got));
    });
    sock.on('connect', async () => {
      for (const p of parts) {
        if (sock.destroyed) break;
        sock.write(p);
        if (r.int(8) === 0) await new Promise((res) => setTimeout(res, r.int(3)));
      }
      if (!sock.destroyed) sock.end();
    });
  });
}

/** Split a buffer in random pieces (partial headers, options and payloads). */
function split(b: Buffer, r: Rng): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length;) {
    const n = 1 + r.int(Math.min(64, b.length - i));
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

function clientFlags(f: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(f >>> 0);
  return b;
}

// The same fuzz against a server answering at once and one holding each reply
// for 1 ms (its sender thread sends at deadlines).
for (const rttMs of [0, 1])
  describe(`NBD server fuzz at RTT ${rttMs} ms (${FUZZ_MS / 1000} s; replay with FAULTLAB_FUZZ_SEED=${RNG_SEED})`, () => {
    const replay = `replay with FAULTLAB_FUZZ_SEED=${RNG_SEED}`;
    let server: NbdServer;
    beforeAll(() => {
      console.log(`fuzz at RTT ${rttMs} ms: FAULTLAB_FUZZ_SEED=${RNG_SEED}`);
      // Refusals are logged one line each: thousands here, so none.
      server = NbdServer.start({ regionBytes: REGION, seed: SEED, rttUs: rttUs(rttMs), logFd: -1, handshakeTimeoutMs: 3000 });
    });
    afterAll(() => server?.stop());

    it('noise, fuzzed handshakes and mutated requests: well-formed replies, never bytes outside the export or wrong bytes, no crash', async () => {
      const r = rng(RNG_SEED + rttMs);
      const c: Check = { replies: 0, readBytes: 0, problems: [] };
      let sessions = 0;
      const end = performance.now() + FUZZ_MS;
      while (performance.now() < end && c.problems.length === 0) {
        const kind = r.int(5);
        let bytes: Buffer;
        let sent: Map<bigint, Request> | null = null;
        if (kind === 0) {
          bytes = garbage(r, 1 + r.int(256)); // pure noise in place of the client flags
        } else if (kind === 1) {
          // A fuzzed handshake: flags (sometimes wrong), then options.
          const opts = Array.from({ length: 1 + r.int(6) }, () => fuzzedOption(r));
          const flags = r.int(8) ? FLAG_FIXED_NEWSTYLE | (r.int(2) ? FLAG_NO_ZEROES : 0) : r.next();
          bytes = Buffer.concat([clientFlags(flags), ...opts]);
        } else {
          // A good handshake, then valid and mutated requests, each with its own cookie.
          sent = new Map();
          const reqs: Buffer[] = [clientFlags(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES), option(Opt.GO, goData())];
          let cookie = 1n;
          for (let n = 1 + r.int(24); n > 0; n--) {
            const q = r.int(3) ? mutatedRequest(r, cookie) : validRequest(r, cookie);
            sent.set(cookie++, decodeRequest(q));
            reqs.push(q);
          }
          if (r.int(4) === 0) {
            const len = 16 + r.int(64);
            const q = request(Cmd.WRITE, cookie, REGION - 8 + r.int(16), len); // refused with ENOSPC, payload dropped
            sent.set(cookie++, decodeRequest(q));
            reqs.push(q, garbage(r, len));
          }
          if (r.int(4) === 0) reqs.push(request(Cmd.READ, cookie++, 0, 64).subarray(0, 1 + r.int(27))); // a truncated last header
          bytes = Buffer.concat(reqs);
        }
        const parts = r.int(3) === 0 ? split(bytes, r) : [bytes];
        checkStream(await session(server, parts, r), sent, c);
        sessions++;
      }
      console.log(`fuzz at RTT ${rttMs} ms: ${sessions} sessions, ${c.replies} replies, ${c.readBytes} READ bytes checked`);
      expect(c.problems, replay).toEqual([]);
      expect(sessions, replay).toBeGreaterThan(50);
      expect(c.readBytes, `the fuzz must have produced successful READs to check; ${replay}`).toBeGreaterThan(0);
      const st = server.stats();
      expect(st.conns_accepted, replay).toBeGreaterThanOrEqual(sessions);
    });

    it('afterwards a fresh connection is served correctly', async () => {
      const client = await NbdClient.open(server.port);
      try {
        expect(client.info.size).toBe(BigInt(REGION));
        for (const [off, len] of [
          [0, 4096],
          [REGION - 4096, 4096],
          [12345, 777],
        ]) {
          const a = await client.read(off, len);
          expect(a.error, replay).toBe(0);
          expect(a.data.equals(expected(off, len)), replay).toBe(true);
        }
        expect((await client.flush()).error, replay).toBe(0);
      } finally {
        client.close();
      }
    });
  });
