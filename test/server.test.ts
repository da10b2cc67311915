// The chunk server's protocol, over a real loopback socket (docs/protocol.md).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { constants as bufferConstants } from 'node:buffer';
import { ChunkServer } from '../harness/server/chunk-server.js';
import { ChunkClient } from '../harness/server/rtt-probe.js';
import { warmUpReads } from '../harness/server/warm-up.js';
import { HELLO_BODY_BYTES, MAGIC, MAX_LEN, Op, RequestParser, Status, VERSION, decodeHello, encodeRequest } from '../harness/server/protocol.js';
import { fill } from '../harness/native.js';
import { faultlab } from './helpers.js';

const REGION = 1 << 20;
const SEED = 7;

function expected(offset: number, len: number): Buffer {
  // fill works on 8-byte words: fill the covering words, then cut.
  const start = offset - (offset % 8);
  const end = Math.ceil((offset + len) / 8) * 8;
  const b = Buffer.alloc(end - start);
  fill(b, SEED, start);
  return b.subarray(offset - start, offset - start + len);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// At RTT 0 the event loop reads and answers; with an RTT, delayed-io.ts and C
// do the I/O: the protocol must be the same on both paths.
describe.each([0, 1])('chunk server protocol (rtt %s ms)', (rtt) => {
  let server: ChunkServer;
  let client: ChunkClient;

  beforeAll(async () => {
    server = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: rtt });
    client = await ChunkClient.connect(server.host, server.port);
  });
  afterAll(async () => {
    client?.close();
    await server?.close();
  });

  it('binds to loopback on a free port by default', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
  });

  it('HELLO describes the region', async () => {
    const a = await client.request(Op.HELLO);
    expect(a.header.status).toBe(Status.OK);
    expect(a.header.len).toBe(HELLO_BODY_BYTES);
    expect(a.header.value).toBe(BigInt(REGION));
    expect(decodeHello(a.body)).toEqual({ magic: MAGIC, version: VERSION, regionBytes: BigInt(REGION), seed: BigInt(SEED) });
    expect(await client.hello()).toMatchObject({ regionBytes: BigInt(REGION) });
  });

  it('READ returns the deterministic contents', async () => {
    for (const [off, len] of [
      [0, 4096],
      [8192, 65536],
      [REGION - 4096, 4096],
      [3, 5], // unaligned is fine
      [REGION, 0], // empty read at the very end
    ]) {
      const a = await client.request(Op.READ, off, len);
      expect(a.header.status).toBe(Status.OK);
      expect(a.header.len).toBe(len);
      expect(a.header.value).toBe(BigInt(off));
      expect(a.body.equals(expected(off, len))).toBe(true);
    }
  });

  it('WRITE updates the region and READ returns it', async () => {
    const payload = Buffer.alloc(4096, 0xab);
    const w = await client.request(Op.WRITE, 12288, 0, payload);
    expect(w.header).toMatchObject({ status: Status.OK, len: 0, value: 12288n });
    const r = await client.request(Op.READ, 12288 - 8, 4096 + 16);
    expect(r.body.subarray(8, 8 + 4096).equals(payload)).toBe(true);
    expect(r.body.subarray(0, 8).equals(expected(12288 - 8, 8))).toBe(true);
    expect(r.body.subarray(4096 + 8).equals(expected(12288 + 4096, 8))).toBe(true);
    // Restore, so other tests see the pattern.
    await client.request(Op.WRITE, 12288, 0, expected(12288, 4096));
    expect((await client.request(Op.READ, 12288, 4096)).body.equals(expected(12288, 4096))).toBe(true);
  });

  it('out-of-range READ answers BOUNDS and the connection keeps serving', async () => {
    for (const [off, len] of [
      [REGION - 8, 16],
      [REGION + 8, 0],
      [2n ** 64n - 8n, 16], // offset + len overflows 64 bits
    ] as const) {
      const a = await client.request(Op.READ, off, len);
      expect(a.header).toMatchObject({ status: Status.BOUNDS, len: 0, value: BigInt(off) });
      expect(a.body.length).toBe(0);
    }
    const ok = await client.request(Op.READ, 0, 64);
    expect(ok.header.status).toBe(Status.OK);
    expect(ok.body.equals(expected(0, 64))).toBe(true);
  });

  it('out-of-range WRITE answers BOUNDS, drops its payload, keeps serving', async () => {
    const a = await client.request(Op.WRITE, REGION - 8, 0, Buffer.alloc(64, 1));
    expect(a.header).toMatchObject({ status: Status.BOUNDS, len: 0 });
    const ok = await client.request(Op.READ, REGION - 64, 64);
    expect(ok.body.equals(expected(REGION - 64, 64))).toBe(true);
  });

  it('unknown op answers BAD_OP and the connection keeps serving', async () => {
    for (const op of [0, 5, 255]) {
      const a = await client.request(op, 16, 8);
      expect(a.header).toMatchObject({ status: Status.BAD_OP, len: 0, value: 16n });
    }
    await client.ping();
    expect((await client.request(Op.READ, 0, 8)).body.equals(expected(0, 8))).toBe(true);
  });

  it('reserved bytes or a len on HELLO/PING answer MALFORMED, connection stays', async () => {
    const [a, b, c] = client.sendRaw(
      Buffer.concat([
        encodeRequest({ op: Op.READ, len: 8, offset: 0, reserved: 1 }),
        encodeRequest({ op: Op.PING, len: 4 }),
        encodeRequest({ op: Op.HELLO, len: 1 }),
      ]),
      3,
    );
    for (const x of [await a, await b, await c]) expect(x.header.status).toBe(Status.MALFORMED);
    // A refused WRITE with reserved bits still has its payload framed and dropped.
    const [w, r] = client.sendRaw(
      Buffer.concat([encodeRequest({ op: Op.WRITE, offset: 0, reserved: 0x10000 }, Buffer.alloc(32, 9)), encodeRequest({ op: Op.READ, len: 32 })]),
      2,
    );
    expect((await w).header.status).toBe(Status.MALFORMED);
    expect((await r).body.equals(expected(0, 32))).toBe(true);
  });

  it('oversized len answers TOO_LARGE and closes the connection', async () => {
    const c = await ChunkClient.connect(server.host, server.port);
    const closed = new Promise<void>((r) => c.socket.once('close', () => r()));
    // A WRITE announcing more than 16 MiB: its payload cannot be framed.
    const [a, after] = c.sendRaw(Buffer.concat([encodeRequest({ op: Op.WRITE, len: MAX_LEN + 1, offset: 0 }), encodeRequest({ op: Op.PING })]), 2);
    expect((await a).header).toMatchObject({ status: Status.TOO_LARGE, len: 0 });
    await expect(after).rejects.toThrow(/closed/);
    await closed;
    const c2 = await ChunkClient.connect(server.host, server.port);
    expect((await c2.request(Op.READ, 0, MAX_LEN + 1)).header.status).toBe(Status.TOO_LARGE);
    c2.close();
    // Exactly 16 MiB is allowed: beyond this 1 MiB region it is a BOUNDS, not a TOO_LARGE.
    expect((await client.request(Op.READ, 0, MAX_LEN)).header.status).toBe(Status.BOUNDS);
  });

  it('parses a request split over several TCP writes', async () => {
    const sock = net.connect(server.port, server.host);
    sock.setNoDelay(true);
    await new Promise((r) => sock.once('connect', r));
    const chunks: Buffer[] = [];
    sock.on('data', (d) => chunks.push(d));
    const payload = expected(4096, 64); // rewrite the same bytes: region stays intact
    const bytes = Buffer.concat([encodeRequest({ op: Op.WRITE, offset: 4096 }, payload), encodeRequest({ op: Op.READ, len: 40, offset: 100 })]);
    // Header split mid-field, payload split, the next header split too.
    for (const [from, to] of [
      [0, 1],
      [1, 7],
      [7, 15],
      [15, 16],
      [16, 50],
      [50, 80],
      [80, 81],
      [81, bytes.length],
    ]) {
      sock.write(bytes.subarray(from, to));
      await sleep(5);
    }
    const deadline = Date.now() + 2000;
    while (Buffer.concat(chunks).length < 16 + 16 + 40 && Date.now() < deadline) await sleep(5);
    const got = Buffer.concat(chunks);
    sock.destroy();
    expect(got.length).toBe(16 + 16 + 40);
    expect(got[0]).toBe(Status.OK);
    expect(got.readBigUInt64LE(8)).toBe(4096n);
    expect(got[16]).toBe(Status.OK);
    expect(got.readUInt32LE(20)).toBe(40);
    expect(got.subarray(32).equals(expected(100, 40))).toBe(true);
  });

  it('answers pipelined requests in order', async () => {
    const reqs: Buffer[] = [];
    const offs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const off = ((i * 7919) % 200) * 4096;
      offs.push(off);
      // Mix in errors and pings: their answers must keep their place too.
      reqs.push(
        i % 10 === 3
          ? encodeRequest({ op: 9, offset: off })
          : i % 10 === 6
            ? encodeRequest({ op: Op.PING, offset: off })
            : encodeRequest({ op: Op.READ, len: 4096, offset: off }),
      );
    }
    const answers = await Promise.all(client.sendRaw(Buffer.concat(reqs), reqs.length));
    answers.forEach((a, i) => {
      expect(a.header.value).toBe(BigInt(offs[i]));
      if (i % 10 === 3) expect(a.header.status).toBe(Status.BAD_OP);
      else if (i % 10 === 6) expect(a.header).toMatchObject({ status: Status.OK, len: 0 });
      else expect(a.body.equals(expected(offs[i], 4096))).toBe(true);
    });
  });

  it('pipelined WRITE/READ on one connection run in request order under latency', async () => {
    const s = await ChunkServer.start({ regionBytes: 65536, seed: SEED, rttMs: 5 });
    const c = await ChunkClient.connect(s.host, s.port);
    try {
      const ones = Buffer.alloc(16, 1);
      const [r1, w, r2] = c.sendRaw(
        Buffer.concat([encodeRequest({ op: Op.READ, len: 16 }), encodeRequest({ op: Op.WRITE, offset: 0 }, ones), encodeRequest({ op: Op.READ, len: 16 })]),
        3,
      );
      expect((await r1).body.equals(expected(0, 16))).toBe(true); // before the write
      expect((await w).header.status).toBe(Status.OK);
      expect((await r2).body.equals(ones)).toBe(true); // after it
      expect(s.counters).toMatchObject({ requests: 3, bytesRead: 32, bytesWritten: 16 });
    } finally {
      c.close();
      await s.close();
    }
  });

  it('answers requests sent before the client half-closed, then closes', async () => {
    const s = await ChunkServer.start({ regionBytes: 65536, seed: SEED, rttMs: 10 });
    try {
      const sock = net.connect(s.port, s.host);
      await new Promise((r) => sock.once('connect', r));
      const chunks: Buffer[] = [];
      sock.on('data', (d) => chunks.push(d));
      const ended = new Promise<void>((r) => sock.once('end', () => r()));
      sock.end(Buffer.concat([encodeRequest({ op: Op.READ, len: 32, offset: 64 }), encodeRequest({ op: Op.PING })]));
      await ended;
      const got = Buffer.concat(chunks);
      expect(got.length).toBe(16 + 32 + 16);
      expect(got.subarray(16, 48).equals(expected(64, 32))).toBe(true);
    } finally {
      await s.close();
    }
  });

  it('counts requests and bytes', () => {
    expect(server.requests).toBeGreaterThan(0);
    expect(server.bytesRead).toBeGreaterThan(0);
    expect(server.bytesWritten).toBeGreaterThan(0);
    expect(server.counters.errors).toBeGreaterThan(0);
  });
});

describe('delayed I/O (rtt > 0: C reads with kernel timestamps and sends at the deadline)', () => {
  const waitFor = async (what: string, ok: () => boolean, ms = 3000) => {
    const end = Date.now() + ms;
    while (!ok()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await sleep(10);
    }
  };
  const count = (dir: string) => readdirSync(dir).length;

  it('a READ keeps the bytes it was asked for when another connection WRITEs before its answer leaves', async () => {
    const s = await ChunkServer.start({ regionBytes: 65536, seed: SEED, rttMs: 30 });
    const [a, b] = await Promise.all([ChunkClient.connect(s.host, s.port), ChunkClient.connect(s.host, s.port)]);
    try {
      const read = a.request(Op.READ, 0, 4096); // answered from the region without a copy, 30 ms later
      await sleep(10);
      const ones = Buffer.alloc(4096, 1);
      expect((await b.request(Op.WRITE, 0, 0, ones)).header.status).toBe(Status.OK);
      expect((await read).body.equals(expected(0, 4096))).toBe(true);
      expect((await a.request(Op.READ, 0, 4096)).body.equals(ones)).toBe(true);
    } finally {
      a.close();
      b.close();
      await s.close();
    }
  });

  it('a client that does not read is held back without stalling another; then it gets every byte', async () => {
    const s = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: 2 });
    const slow = net.connect(s.port, s.host);
    const slowUp = new Promise((r) => slow.once('connect', r));
    const fast = await ChunkClient.connect(s.host, s.port);
    try {
      await slowUp;
      slow.pause();
      const n = 80; // 80 MiB of answers: more than the 32 MiB a connection may have unsent
      slow.write(Buffer.concat(Array.from({ length: n }, () => encodeRequest({ op: Op.READ, len: REGION, offset: 0 }))));
      await sleep(200);
      const t0 = Date.now();
      expect((await fast.request(Op.PING)).header.status).toBe(Status.OK);
      expect(Date.now() - t0).toBeLessThan(1000);
      const chunks: Buffer[] = [];
      let got = 0;
      slow.on('data', (d) => {
        chunks.push(d);
        got += d.length;
      });
      slow.resume();
      await waitFor('every answer', () => got >= n * (16 + REGION), 20000);
      const all = Buffer.concat(chunks);
      expect(all.length).toBe(n * (16 + REGION));
      const want = expected(0, REGION);
      for (let i = 0; i < n; i++) {
        const at = i * (16 + REGION);
        expect(all[at]).toBe(Status.OK);
        expect(all.subarray(at + 16, at + 16 + REGION).equals(want), `answer ${i}`).toBe(true);
      }
    } finally {
      slow.destroy();
      fast.close();
      await s.close();
    }
  });

  it('connections that close, half-close or reset with answers pending leave no descriptor or thread behind', async () => {
    const s = await ChunkServer.start({ regionBytes: 65536, seed: SEED, rttMs: 5 });
    const fds = count('/proc/self/fd');
    const threads = count('/proc/self/task');
    try {
      for (let round = 0; round < 3; round++) {
        const socks = await Promise.all(
          Array.from(
            { length: 20 },
            () =>
              new Promise<net.Socket>((r) => {
                const c = net.connect(s.port, s.host, () => r(c));
                c.on('error', () => {});
                c.resume(); // a half-closed client closes once it has read the server's end
              }),
          ),
        );
        const clientsClosed = Promise.all(socks.map((c) => new Promise((r) => c.once('close', r))));
        socks.forEach((c, i) => {
          c.write(Buffer.concat([encodeRequest({ op: Op.READ, len: 4096 }), encodeRequest({ op: Op.PING })]));
          if (i % 3 === 0)
            c.end(); // half-close: answers still come
          else if (i % 3 === 1)
            c.resetAndDestroy(); // gone with answers pending
          else c.destroy();
        });
        await clientsClosed;
        await waitFor('the server to drop every connection', () => s.openConnections === 0);
      }
      await waitFor('descriptors and threads back to where they were', () => count('/proc/self/fd') <= fds && count('/proc/self/task') <= threads);
    } finally {
      await s.close();
    }
  });
});

describe('chunk server start-up', () => {
  it('rejects bad region sizes', async () => {
    await expect(ChunkServer.start({ regionBytes: 0, seed: 1, rttMs: 0 })).rejects.toThrow(/region of 0 bytes/);
    await expect(ChunkServer.start({ regionBytes: 4100, seed: 1, rttMs: 0 })).rejects.toThrow(/not a multiple of 8/);
    await expect(ChunkServer.start({ regionBytes: bufferConstants.MAX_LENGTH + 8, seed: 1, rttMs: 0 })).rejects.toThrow(/larger than/);
  });

  it('rejects a negative rtt', async () => {
    await expect(ChunkServer.start({ regionBytes: 4096, seed: 1, rttMs: -1 })).rejects.toThrow(/rtt/);
  });

  it('reports a port in use', async () => {
    const a = await ChunkServer.start({ regionBytes: 4096, seed: 1, rttMs: 0 });
    try {
      await expect(ChunkServer.start({ regionBytes: 4096, seed: 1, rttMs: 0, port: a.port })).rejects.toThrow(`port ${a.port} in use`);
    } finally {
      await a.close();
    }
  });

  it('warns when listening beyond loopback', async () => {
    const lines: string[] = [];
    const s = await ChunkServer.start({ host: '0.0.0.0', regionBytes: 4096, seed: 1, rttMs: 0, warn: (l) => lines.push(l) });
    await s.close();
    expect(lines.join('\n')).toMatch(/not loopback/);
    const quiet: string[] = [];
    const q = await ChunkServer.start({ regionBytes: 4096, seed: 1, rttMs: 0, warn: (l) => quiet.push(l) });
    await q.close();
    expect(quiet).toEqual([]);
  });

  it('close() drops connected clients', async () => {
    const s = await ChunkServer.start({ regionBytes: 4096, seed: 1, rttMs: 50 });
    const c = await ChunkClient.connect(s.host, s.port);
    const pending = c.request(Op.PING);
    await s.close();
    await expect(pending).rejects.toThrow();
  });
});

// A fresh server's first requests run unoptimised JavaScript: bench, transport,
// the runner and serve warm it (warm-up.ts) before anything is measured.
describe('chunk server warm-up', () => {
  it('answers its READs and leaves them out of the counters; the server then serves as before', async () => {
    const s = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: 0, trace: true });
    try {
      await s.warmUp(300);
      expect(s.trace().filter((t) => t.op === Op.READ)).toHaveLength(300); // answered, one by one
      expect(s.counters).toEqual({ requests: 0, bytesRead: 0, bytesWritten: 0, errors: 0, connections: 0 });
      const c = await ChunkClient.connect(s.host, s.port);
      const a = await c.request(Op.READ, 4096, 4096);
      c.close();
      expect(a.body.equals(expected(4096, 4096))).toBe(true);
      expect(s.counters).toMatchObject({ requests: 1, bytesRead: 4096, connections: 1 });
    } finally {
      await s.close();
    }
  });

  it('reads every byte it asks for, also from a region smaller than a page', async () => {
    const s = await ChunkServer.start({ regionBytes: 8, seed: 1, rttMs: 0 });
    try {
      expect(await warmUpReads(s.host, s.port, 8, 50)).toBe(400);
      expect(s.counters).toMatchObject({ requests: 50, bytesRead: 400 });
    } finally {
      await s.close();
    }
  });

  it('does nothing with an RTT: C sends those answers at their deadlines (5000 READs at 20 ms would take 100 s)', async () => {
    const s = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: 20 });
    try {
      const t0 = performance.now();
      await s.warmUp();
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(s.counters.connections).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('a server that drops the connection fails it with one message, not a hang', async () => {
    const dropper = net.createServer((sock) => sock.destroy());
    await new Promise<void>((r) => dropper.listen(0, '127.0.0.1', r));
    try {
      await expect(warmUpReads('127.0.0.1', (dropper.address() as net.AddressInfo).port, 4096, 10)).rejects.toThrow(/^chunk server warm-up: /);
    } finally {
      dropper.close();
    }
  });
});

describe('request parser', () => {
  it('frames byte-by-byte input and stops after TOO_LARGE', () => {
    const p = new RequestParser(4096);
    const bytes = Buffer.concat([
      encodeRequest({ op: Op.WRITE, offset: 8 }, Buffer.alloc(8, 2)),
      encodeRequest({ op: Op.READ, len: 16, offset: 4088 }),
      encodeRequest({ op: Op.READ, len: MAX_LEN + 1 }),
      encodeRequest({ op: Op.PING }),
    ]);
    const out = [];
    for (let i = 0; i < bytes.length; i++) out.push(...p.push(bytes.subarray(i, i + 1)));
    expect(out.map((r) => r.status)).toEqual([Status.OK, Status.BOUNDS, Status.TOO_LARGE]);
    expect(out[0].payload?.equals(Buffer.alloc(8, 2))).toBe(true);
    expect(out[2].closeAfter).toBe(true);
    expect(p.closed).toBe(true);
  });
});

describe('serve and calibrate arguments', () => {
  it('parses --listen HOST:PORT', async () => {
    const { parseHostPort } = await import('../harness/commands/serve.js');
    expect(parseHostPort('0.0.0.0:7070')).toEqual({ host: '0.0.0.0', port: 7070 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort('9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    for (const bad of ['::1:80', 'host:', 'h:70000', 'a:b']) expect(() => parseHostPort(bad)).toThrow(/expected HOST:PORT/);
  });

  it('parses --rtt lists', async () => {
    const { parseRttList, acceptanceBoundMs } = await import('../harness/commands/calibrate.js');
    expect(parseRttList('0.5, 1,2')).toEqual([0.5, 1, 2]);
    expect(() => parseRttList('1,x')).toThrow(/bad --rtt value 'x'/);
    expect(() => parseRttList('')).toThrow(/at least one/);
    expect(acceptanceBoundMs(1)).toBe(0.05);
    expect(acceptanceBoundMs(40)).toBeCloseTo(0.8);
  });

  it('calibrate --breakdown refuses more samples than it traces; a PING trace is only for op=ping, at most 4096', async () => {
    const r = faultlab(['calibrate', '--breakdown', '--samples', '5000']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/--breakdown traces at most 4096 --samples/);
    const { transportNative } = await import('../harness/native.js');
    await expect(transportNative('op=read trace=1 source=tcp port=1')).rejects.toThrow(/trace=1 is for op=ping with at most 4096 requests/);
    await expect(transportNative('op=ping trace=1 requests=5000 source=tcp port=1')).rejects.toThrow(/at most 4096/);
    await expect(transportNative('op=ping trace=2 source=tcp port=1')).rejects.toThrow(/trace must be 0 or 1, not '2'/);
    await expect(transportNative('requests=5x source=tcp port=1')).rejects.toThrow(/requests must be 1 to 100000000, got '5x'/);
  });

  it('transport land=region reads every chunk into its own offset of a region-sized mapping, bytes verified; bad land refused', async () => {
    const { transportNative } = await import('../harness/native.js');
    const server = await ChunkServer.start({ regionBytes: REGION, seed: SEED, rttMs: 0 });
    try {
      const spec = `source=tcp host=${server.host} port=${server.port} region=${REGION} seed=${SEED} chunk=65536 requests=20`;
      for (const land of ['buffer', 'region']) {
        const r = await transportNative(`${spec} land=${land}`);
        expect(r).toMatchObject({ land, n: 20, verified: true });
      }
    } finally {
      await server.close();
    }
    await expect(transportNative('land=cache source=tcp port=1')).rejects.toThrow(/land must be buffer or region, not 'cache'/);
    await expect(transportNative('op=ping land=region source=tcp port=1')).rejects.toThrow(/land=region is for op=read/);
  });
});
