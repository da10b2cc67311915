// Fuzzing the chunk server (harness/server) for a bounded time: random bytes
// and mutated requests, whole or split in random pieces, over real sockets.
// Whatever it receives, the server must not crash, must answer in well-formed
// frames, must never answer with bytes outside the region (every READ answer's
// offset and length are checked against the region and its bytes against
// fill(seed, offset)), and must keep serving good requests afterwards.
//
// The region must stay fill(seed, offset) for the contents check to hold, so
// the fuzzer never lets a WRITE through with other bytes: garbage connections
// contain no 0x03 byte (the WRITE op), mutations never produce op 3, and the
// only WRITEs sent are whole, correct ones (or out of bounds, which the server
// refuses and drops).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { ChunkServer } from '../harness/server/chunk-server.js';
import { ChunkClient } from '../harness/server/rtt-probe.js';
import { HELLO_BODY_BYTES, MAX_LEN, Op, RESP_HEADER_BYTES, Status, decodeHello, decodeResponse, encodeRequest } from '../harness/server/protocol.js';
import { fill } from '../harness/native.js';

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

function expected(offset: number, len: number): Buffer {
  const start = offset - (offset % 8);
  const b = Buffer.alloc(Math.ceil((offset + len) / 8) * 8 - start);
  fill(b, SEED, start);
  return b.subarray(offset - start, offset - start + len);
}

const LENS = [0, 1, 7, 8, 15, 16, 4095, 4096, 4097, REGION - 8, REGION, REGION + 1, MAX_LEN, MAX_LEN + 1, 0xffffffff];
const OFFSETS = [0n, 1n, 8n, 4096n, BigInt(REGION - 8), BigInt(REGION - 1), BigInt(REGION), BigInt(REGION + 8), 2n ** 63n, 2n ** 64n - 8n, 2n ** 64n - 1n];

type Rng = ReturnType<typeof rng>;

/** A valid request (a WRITE carries the region's own bytes, so it changes nothing). */
function validRequest(r: Rng): Buffer {
  const op = r.pick([Op.HELLO, Op.PING, Op.READ, Op.READ, Op.WRITE]);
  if (op === Op.HELLO || op === Op.PING) return encodeRequest({ op });
  const len = r.int(2) ? r.int(4097) : r.pick(LENS.filter((l) => l <= REGION));
  const offset = r.int(REGION - len + 1);
  return op === Op.READ ? encodeRequest({ op, len, offset }) : encodeRequest({ op, offset }, expected(offset, len));
}

/** A READ/HELLO/PING/unknown-op header with one to three mutations; never op 3 (WRITE). */
function mutatedRequest(r: Rng): Buffer {
  const h = encodeRequest({ op: r.pick([Op.HELLO, Op.PING, Op.READ, 0, 5, 255]), len: r.int(8193), offset: BigInt(r.int(REGION)) });
  for (let m = 1 + r.int(3); m > 0; m--) {
    switch (r.int(5)) {
      case 0:
        h[r.int(16)] ^= 1 << r.int(8);
        break;
      case 1:
        h.writeUInt32LE(r.pick(LENS), 4);
        break;
      case 2:
        h.writeBigUInt64LE(r.pick(OFFSETS), 8);
        break;
      case 3:
        h.writeUIntLE(1 + r.int(0xffffff), 1, 3); // reserved bits
        break;
      default:
        h[0] = r.int(256);
    }
  }
  if (h[0] === Op.WRITE) h[0] ^= 0x80;
  return h;
}

function garbage(r: Rng, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) {
    let x = r.int(256);
    if (x === Op.WRITE) x = 0x83;
    b[i] = x;
  }
  return b;
}

interface Check {
  answers: number;
  readBytes: number;
  problems: string[];
}

/** Parse the server's answers as a client must, and check every one. */
function checkAnswers(stream: Buffer, c: Check): void {
  let pos = 0;
  while (stream.length - pos >= RESP_HEADER_BYTES) {
    const h = decodeResponse(stream, pos);
    pos += RESP_HEADER_BYTES;
    c.answers++;
    if (h.status > Status.MALFORMED) c.problems.push(`unknown status ${h.status}`);
    if (h.reserved !== 0) c.problems.push(`reserved bytes ${h.reserved} in an answer`);
    if (h.status !== Status.OK) {
      if (h.len !== 0) c.problems.push(`status ${h.status} answer with len ${h.len}`);
      continue;
    }
    if (h.len === 0) continue; // PING, WRITE, empty READ
    if (stream.length - pos < h.len) {
      c.problems.push(`answer announces ${h.len} bytes, ${stream.length - pos} arrived`);
      return;
    }
    const body = stream.subarray(pos, pos + h.len);
    pos += h.len;
    if (h.len === HELLO_BODY_BYTES && h.value === BigInt(REGION) && decodeHello(body).regionBytes === BigInt(REGION)) continue; // HELLO
    // A READ answer: inside the region, with the region's bytes.
    if (h.value + BigInt(h.len) > BigInt(REGION)) {
      c.problems.push(`READ answer outside the region: offset ${h.value} len ${h.len}`);
      continue;
    }
    c.readBytes += h.len;
    if (!body.equals(expected(Number(h.value), h.len))) c.problems.push(`READ answer at ${h.value} (${h.len} bytes) has wrong bytes`);
  }
  if (pos !== stream.length) c.problems.push(`${stream.length - pos} stray bytes after the last whole answer`);
}

/** One connection: send `parts` (each written separately, sometimes after a pause), half-close, collect everything until the server closes. */
function session(server: ChunkServer, parts: Buffer[], r: Rng): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: server.host, port: server.port });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('the server neither answered nor closed within 3 s of the client closing'));
    }, 3000);
    sock.on('data', (d) => got.push(d));
    sock.on('error', () => {}); // a reset after TOO_LARGE is fine: 'close' follows
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

/** Split a buffer in random pieces (exercises the parser's partial headers and payloads). */
function split(b: Buffer, r: Rng): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < b.length;) {
    const n = 1 + r.int(Math.min(64, b.length - i));
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

// The same fuzz against a server answering at once and one delaying each
// answer (its delayed sender queues, batches and reorders nothing).
for (const rttMs of [0, 1])
  describe(`chunk server fuzz at RTT ${rttMs} ms (${FUZZ_MS / 1000} s; replay with FAULTLAB_FUZZ_SEED=${RNG_SEED})`, () => {
    const replay = `replay with FAULTLAB_FUZZ_SEED=${RNG_SEED}`;
    let server: ChunkServer;
    const warnings: string[] = [];
    beforeAll(async () => {
      console.log(`fuzz at RTT ${rttMs} ms: FAULTLAB_FUZZ_SEED=${RNG_SEED}`);
      server = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs, warn: (l) => warnings.push(l) });
    });
    afterAll(async () => server?.close());

    it('random and mutated requests: well-formed answers, never bytes outside the region or wrong bytes, no crash', async () => {
      const r = rng(RNG_SEED);
      const c: Check = { answers: 0, readBytes: 0, problems: [] };
      let sessions = 0;
      const end = performance.now() + FUZZ_MS;
      while (performance.now() < end && c.problems.length === 0) {
        const kind = r.int(4);
        let bytes: Buffer;
        if (kind === 0) {
          bytes = garbage(r, 1 + r.int(256)); // pure noise (no WRITE op byte anywhere)
        } else {
          const reqs: Buffer[] = [];
          for (let n = 1 + r.int(24); n > 0; n--) reqs.push(r.int(3) ? mutatedRequest(r) : validRequest(r));
          if (r.int(4) === 0) reqs.push(encodeRequest({ op: Op.WRITE, offset: BigInt(REGION - 8 + r.int(16)) }, garbage(r, 16 + r.int(64)))); // refused, payload dropped
          if (r.int(4) === 0) reqs.push(encodeRequest({ op: Op.READ, len: 64, offset: 0 }).subarray(0, 1 + r.int(15))); // a truncated last header
          bytes = Buffer.concat(reqs);
        }
        const parts = kind === 3 ? split(bytes, r) : [bytes];
        checkAnswers(await session(server, parts, r), c);
        sessions++;
      }
      expect(c.problems, replay).toEqual([]);
      expect(sessions, replay).toBeGreaterThan(50);
      expect(c.readBytes, `the fuzz must have produced successful READs to check; ${replay}`).toBeGreaterThan(0);
      expect(
        warnings.filter((w) => /error/i.test(w)),
        replay,
      ).toEqual([]);
    });

    it('afterwards a fresh connection is served correctly', async () => {
      const client = await ChunkClient.connect(server.host, server.port, 2000);
      try {
        expect((await client.hello()).regionBytes).toBe(BigInt(REGION));
        for (const [off, len] of [
          [0, 4096],
          [REGION - 4096, 4096],
          [12345, 777],
        ]) {
          const a = await client.request(Op.READ, off, len);
          expect(a.header.status, replay).toBe(Status.OK);
          expect(a.body.equals(expected(off, len)), replay).toBe(true);
        }
        await client.ping();
      } finally {
        client.close();
      }
    });
  });
