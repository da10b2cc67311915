// faultlab's NBD server (native/src/server, through harness/server/nbd-server.ts)
// over a real loopback socket, spoken to by the tests' own NBD client
// (test/nbd-wire.ts): the protocol as docs/protocol.md describes it, at RTT 0
// (the event loop sends) and with an RTT (the sender thread sends at deadlines).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import net from 'node:net';
import { readdirSync } from 'node:fs';
import { NbdServer, nbdSpec, rttUs } from '../harness/server/nbd-server.js';
import { fill } from '../harness/native.js';
import { parseRemote, formatRemote } from '../harness/remote.js';
import { faultlab } from './helpers.js';
import { Cmd, Err, FLAG_HAS_FLAGS, FLAG_SEND_FLUSH, MAX_BLOCK, NbdClient, REPLY_BYTES, SIMPLE_REPLY_MAGIC, connect, request } from './nbd-wire.js';

const REGION = 1 << 20;
const SEED = 7;

function expected(offset: number, len: number, seed = SEED): Buffer {
  // fill works on 8-byte words: fill the covering words, then cut.
  const start = offset - (offset % 8);
  const end = Math.ceil((offset + len) / 8) * 8;
  const b = Buffer.alloc(end - start);
  fill(b, seed, start);
  return b.subarray(offset - start, offset - start + len);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const waitFor = async (what: string, ok: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
};
const count = (dir: string) => readdirSync(dir).length;

describe.each([0, 1])('NBD server protocol (rtt %s ms)', (rtt) => {
  let server: NbdServer;
  let client: NbdClient;

  beforeAll(async () => {
    server = NbdServer.start({ regionBytes: REGION, seed: SEED, rttUs: rttUs(rtt), logFd: -1 });
    client = await NbdClient.open(server.port);
  });
  afterAll(() => {
    client?.close();
    server?.stop();
  });

  it('binds to loopback on a free port by default', () => {
    expect(server.host).toBe('127.0.0.1');
    expect(server.port).toBeGreaterThan(0);
    expect(server.stats()).toMatchObject({ listen: '127.0.0.1', port: server.port, region: REGION, rtt_us: rtt * 1000 });
    expect(server.uri).toBe(`nbd://127.0.0.1:${server.port}`);
  });

  it('NBD_OPT_GO describes the export: size, flags, block sizes and the seed', () => {
    expect(client.info).toEqual({
      size: BigInt(REGION),
      tflags: FLAG_HAS_FLAGS | FLAG_SEND_FLUSH,
      minBlock: 1,
      prefBlock: 4096,
      maxBlock: MAX_BLOCK,
      description: `faultlab seed=${SEED}`,
    });
  });

  it('READ returns the deterministic contents', async () => {
    for (const [off, len] of [
      [0, 4096],
      [4096 * 3, 8192],
      [13, 100],
      [REGION - 5, 5],
    ]) {
      const r = await client.read(off, len);
      expect(r.error).toBe(0);
      expect(r.data.equals(expected(off, len)), `READ ${len} at ${off}`).toBe(true);
    }
  });

  it('WRITE updates the contents and READ returns them; FLUSH answers', async () => {
    const data = Buffer.alloc(5000, 0xab);
    expect((await client.write(10_000, data)).error).toBe(0);
    const r = await client.read(9_996, 5008);
    expect(r.data.subarray(4, 5004).equals(data)).toBe(true);
    expect(r.data.subarray(0, 4).equals(expected(9_996, 4))).toBe(true);
    expect(r.data.subarray(5004).equals(expected(15_000, 4))).toBe(true);
    expect((await client.flush()).error).toBe(0);
  });

  it('out-of-range READ answers EINVAL and the connection keeps serving', async () => {
    expect((await client.read(REGION - 4096, 8192)).error).toBe(Err.EINVAL);
    expect((await client.read(REGION, 1)).error).toBe(Err.EINVAL);
    expect((await client.read(0, 0)).error).toBe(Err.EINVAL);
    expect((await client.read(0, MAX_BLOCK + 1)).error).toBe(Err.EINVAL);
    expect((await client.read(0, 8)).data.equals(expected(0, 8))).toBe(true);
  });

  it('out-of-range WRITE answers ENOSPC, drops its payload, keeps serving', async () => {
    expect((await client.write(REGION - 8, Buffer.alloc(16, 1))).error).toBe(Err.ENOSPC);
    expect((await client.read(REGION - 8, 8)).data.equals(expected(REGION - 8, 8))).toBe(true);
  });

  it('commands not advertised (TRIM, CACHE, WRITE_ZEROES, BLOCK_STATUS) and command flags answer EINVAL; the connection stays', async () => {
    for (const t of [Cmd.TRIM, Cmd.CACHE, Cmd.WRITE_ZEROES, Cmd.BLOCK_STATUS]) expect((await client.call(t, 0, 4096)).error, `command ${t}`).toBe(Err.EINVAL);
    client.sock.write(request(Cmd.READ, 99n, 0, 8, 1)); // FUA on a READ
    const h = await client.r.take(REPLY_BYTES);
    expect([h.readUInt32BE(4), h.readBigUInt64BE(8)]).toEqual([Err.EINVAL, 99n]);
    expect((await client.read(64, 8)).data.equals(expected(64, 8))).toBe(true);
  });

  it('an unknown command or a bad request magic closes the connection', async () => {
    for (const bad of [request(42, 1n, 0, 0), Buffer.alloc(28, 0xee)]) {
      const c = await NbdClient.open(server.port);
      c.sock.write(bad);
      expect(await c.r.closed()).toBe(true);
    }
    expect((await client.read(0, 8)).error).toBe(0);
  });

  it('parses requests split over many TCP writes, one byte each', async () => {
    const c = await NbdClient.open(server.port);
    try {
      const bytes = Buffer.concat([request(Cmd.WRITE, 1n, 8, 8), Buffer.alloc(8, 2), request(Cmd.READ, 2n, 0, 24)]);
      for (let i = 0; i < bytes.length; i++) {
        c.sock.write(bytes.subarray(i, i + 1));
        if (i % 7 === 0) await sleep(1);
      }
      const w = await c.r.take(REPLY_BYTES);
      expect([w.readUInt32BE(0), w.readUInt32BE(4), w.readBigUInt64BE(8)]).toEqual([SIMPLE_REPLY_MAGIC, 0, 1n]);
      const r = await c.r.take(REPLY_BYTES);
      expect([r.readUInt32BE(4), r.readBigUInt64BE(8)]).toEqual([0, 2n]);
      const d = await c.r.take(24);
      expect(d.subarray(8, 16).equals(Buffer.alloc(8, 2))).toBe(true);
    } finally {
      c.close();
    }
  });

  it('answers pipelined requests in order; a WRITE then a READ of the same bytes run in request order', async () => {
    const c = await NbdClient.open(server.port);
    try {
      c.sock.write(
        Buffer.concat([
          request(Cmd.READ, 1n, 4096, 16),
          request(Cmd.WRITE, 2n, 4096, 16),
          Buffer.alloc(16, 9),
          request(Cmd.READ, 3n, 4096, 16),
          request(Cmd.FLUSH, 4n, 0, 0),
        ]),
      );
      const h1 = await c.r.take(REPLY_BYTES);
      const d1 = await c.r.take(16);
      const h2 = await c.r.take(REPLY_BYTES);
      const h3 = await c.r.take(REPLY_BYTES);
      const d3 = await c.r.take(16);
      const h4 = await c.r.take(REPLY_BYTES);
      expect([h1, h2, h3, h4].map((h) => h.readBigUInt64BE(8))).toEqual([1n, 2n, 3n, 4n]);
      expect(d1.equals(expected(4096, 16)) || d1.equals(Buffer.alloc(16, 9))).toBe(true); // an earlier test file case may have written here: not this one
      expect(d3.equals(Buffer.alloc(16, 9))).toBe(true);
    } finally {
      c.close();
    }
  });

  it('answers requests sent before the client half-closed, then closes', async () => {
    const sock = await connect(server.port);
    const c = await NbdClient.open(server.port);
    sock.destroy();
    c.sock.end(Buffer.concat([request(Cmd.READ, 5n, 0, 8), request(Cmd.FLUSH, 6n, 0, 0)]));
    const h = await c.r.take(REPLY_BYTES);
    expect(h.readBigUInt64BE(8)).toBe(5n);
    await c.r.take(8);
    expect((await c.r.take(REPLY_BYTES)).readBigUInt64BE(8)).toBe(6n);
    expect(await c.r.closed()).toBe(true);
  });

  it('counts requests and bytes', () => {
    const st = server.stats();
    expect(st.requests).toBeGreaterThan(10);
    expect(st.reads).toBeGreaterThan(5);
    expect(st.bytes_read).toBeGreaterThan(4096);
    expect(st.bytes_written).toBeGreaterThanOrEqual(5000 + 8);
    expect(st.errors).toBeGreaterThan(5);
    expect(st.conns_accepted).toBeGreaterThanOrEqual(4);
  });
});

describe('replies held for an RTT (the sender thread sends at deadlines)', () => {
  it('a READ keeps the bytes it was asked for when another connection WRITEs before its reply leaves', async () => {
    const s = NbdServer.start({ regionBytes: 65536, seed: SEED, rttUs: rttUs(30), logFd: -1 });
    const a = await NbdClient.open(s.port);
    const b = await NbdClient.open(s.port);
    try {
      const read = a.read(0, 4096);
      await sleep(5);
      expect((await b.write(0, Buffer.alloc(4096, 1))).error).toBe(0);
      expect((await read).data.equals(expected(0, 4096))).toBe(true);
      expect((await a.read(0, 4096)).data.equals(Buffer.alloc(4096, 1))).toBe(true);
    } finally {
      a.close();
      b.close();
      s.stop();
    }
  });

  it('a client that does not read is held back without stalling another; then it gets every byte', async () => {
    const s = NbdServer.start({ regionBytes: REGION, seed: SEED, rttUs: rttUs(2), logFd: -1 });
    const slow = await NbdClient.open(s.port);
    const fast = await NbdClient.open(s.port);
    try {
      slow.sock.pause();
      const n = 80; // 80 MiB of replies: more than the 64 MiB a connection may have queued
      slow.sock.write(Buffer.concat(Array.from({ length: n }, (_, i) => request(Cmd.READ, BigInt(i), 0, REGION))));
      await sleep(200);
      const t0 = Date.now();
      expect((await fast.flush()).error).toBe(0);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(s.stats().paused_reads).toBeGreaterThan(0);
      slow.sock.resume();
      const want = expected(0, REGION);
      for (let i = 0; i < n; i++) {
        const h = await slow.r.take(REPLY_BYTES, 20_000);
        expect([h.readUInt32BE(4), h.readBigUInt64BE(8)]).toEqual([0, BigInt(i)]);
        expect((await slow.r.take(REGION, 20_000)).equals(want), `reply ${i}`).toBe(true);
      }
    } finally {
      slow.sock.destroy();
      fast.close();
      s.stop();
    }
  });

  it('connections that close, half-close or reset with replies pending leave no descriptor or thread behind', async () => {
    const s = NbdServer.start({ regionBytes: 65536, seed: SEED, rttUs: rttUs(5), logFd: -1 });
    const fds = count('/proc/self/fd');
    const threads = count('/proc/self/task');
    try {
      for (let round = 0; round < 3; round++) {
        const clients = await Promise.all(Array.from({ length: 20 }, () => NbdClient.open(s.port)));
        const closed = Promise.all(clients.map((c) => new Promise((r) => (c.sock.destroyed ? r(null) : c.sock.once('close', r)))));
        clients.forEach((c, i) => {
          c.sock.resume();
          c.sock.write(Buffer.concat([request(Cmd.READ, 1n, 0, 4096), request(Cmd.FLUSH, 2n, 0, 0)]));
          if (i % 3 === 0)
            c.sock.end(); // half-close: replies still come, then the server closes
          else if (i % 3 === 1)
            c.sock.resetAndDestroy(); // gone with replies pending
          else c.sock.destroy();
        });
        await closed;
        await waitFor('the server to drop every connection', () => s.stats().conns_open === 0);
      }
      await waitFor('descriptors and threads back to where they were', () => count('/proc/self/fd') <= fds && count('/proc/self/task') <= threads);
    } finally {
      s.stop();
    }
  });
});

describe('NBD server start-up', () => {
  it('passes rxStamps to the C side as rx_stamps=1 or 0, and leaves it out (the server decides by its RTT) when unset', () => {
    expect(nbdSpec({ regionBytes: REGION, rxStamps: true })).toBe(`region=${REGION} rx_stamps=1`);
    expect(nbdSpec({ regionBytes: REGION, rttUs: 5, rxStamps: false })).toBe(`region=${REGION} rtt_us=5 rx_stamps=0`);
    expect(nbdSpec({ regionBytes: REGION })).toBe(`region=${REGION}`);
  });

  it('rejects bad options with the C side’s one line', () => {
    expect(() => NbdServer.start({ regionBytes: 0 })).toThrow(/bad value for 'region': '0'/);
    expect(() => NbdServer.start({ regionBytes: 4096, rttUs: -1 })).toThrow(/bad value for 'rtt_us'/);
    expect(() => NbdServer.start({ regionBytes: 4096, listen: 'localhost' })).toThrow(/bad value for 'listen'/);
  });

  it('reports a port in use', () => {
    const a = NbdServer.start({ regionBytes: 4096 });
    try {
      expect(() => NbdServer.start({ regionBytes: 4096, port: a.port })).toThrow(
        new RegExp(`cannot listen on 127\\.0\\.0\\.1 port ${a.port}: Address already in use`),
      );
    } finally {
      a.stop();
    }
  });

  it('stop() drops connected clients; a second stop does nothing', async () => {
    const s = NbdServer.start({ regionBytes: 4096, rttUs: rttUs(50) });
    const c = await NbdClient.open(s.port);
    const pending = c.flush(10_000).catch((e: Error) => e);
    s.stop();
    s.stop();
    expect(await c.r.closed()).toBe(true);
    expect(await pending).toBeInstanceOf(Error);
  });

  it('a non-IP --listen, or one beyond loopback without --allow-remote, is refused by serve as usage', () => {
    const r = faultlab(['serve', '--listen', 'localhost:0']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/HOST must be an IPv4 or IPv6 address/);
    const o = faultlab(['serve', '--listen', '0.0.0.0:0']);
    expect(o.status).toBe(2);
    expect(o.stderr).toMatch(/not loopback: NBD has no authentication.*--allow-remote/);
  });
});

describe('serve, --remote and calibrate arguments', () => {
  it('parses --listen HOST:PORT', async () => {
    const { parseHostPort } = await import('../harness/commands/serve.js');
    expect(parseHostPort('0.0.0.0:7070')).toEqual({ host: '0.0.0.0', port: 7070 });
    expect(parseHostPort('[::1]:80')).toEqual({ host: '::1', port: 80 });
    expect(parseHostPort('9000')).toEqual({ host: '127.0.0.1', port: 9000 });
    for (const bad of ['::1:80', 'host:', 'h:70000', 'a:b']) expect(() => parseHostPort(bad)).toThrow(/expected HOST:PORT/);
  });

  it('parses --remote nbd://HOST:PORT[/EXPORT] and HOST:PORT', () => {
    expect(parseRemote('127.0.0.1:7070')).toEqual({ host: '127.0.0.1', port: 7070 });
    expect(parseRemote('nbd://example.org:10809')).toEqual({ host: 'example.org', port: 10809 });
    expect(parseRemote('nbd://10.0.0.1:10809/')).toEqual({ host: '10.0.0.1', port: 10809 });
    expect(parseRemote('nbd://10.0.0.1:10809/disk%2Da')).toEqual({ host: '10.0.0.1', port: 10809, exportName: 'disk-a' });
    expect(parseRemote('nbd://[::1]:10809/x')).toEqual({ host: '::1', port: 10809, exportName: 'x' });
    expect(formatRemote({ host: '::1', port: 1, exportName: 'x/y' })).toBe('nbd://[::1]:1/x%2Fy');
    // An export name with a space cannot be passed to the C client's spec (space-separated keys).
    for (const bad of ['example.org', 'nbd://host', 'nbd://h:0', 'h:70000', 'nbd+unix:///x?socket=/s', 'nbd://h:1/a%20b'])
      expect(() => parseRemote(bad), bad).toThrow(/bad --remote/);
  });

  it('parses --rtt lists', async () => {
    const { parseRttList, acceptanceBoundMs } = await import('../harness/commands/calibrate.js');
    expect(parseRttList('0.5, 1,2')).toEqual([0.5, 1, 2]);
    expect(() => parseRttList('1,x')).toThrow(/bad --rtt value 'x'/);
    expect(() => parseRttList('')).toThrow(/at least one/);
    expect(acceptanceBoundMs(1)).toBe(0.05);
    expect(acceptanceBoundMs(40)).toBeCloseTo(0.8);
  });

  it('a FLUSH trace is only for op=ping, at most 4096; bad transport keys refused', async () => {
    const { transportNative } = await import('../harness/native.js');
    await expect(transportNative('op=read trace=1 source=tcp port=1')).rejects.toThrow(/trace=1 is for op=ping with at most 4096 requests/);
    await expect(transportNative('op=ping trace=1 requests=5000 source=tcp port=1')).rejects.toThrow(/at most 4096/);
    await expect(transportNative('op=ping trace=2 source=tcp port=1')).rejects.toThrow(/trace must be 0 or 1, not '2'/);
    await expect(transportNative('requests=5x source=tcp port=1')).rejects.toThrow(/requests must be 1 to 100000000, got '5x'/);
  });

  it('transport land=region reads every chunk into its own offset of a region-sized mapping, bytes verified; bad land refused', async () => {
    const { transportNative } = await import('../harness/native.js');
    const server = NbdServer.start({ regionBytes: REGION, seed: SEED });
    try {
      const spec = `source=tcp host=${server.host} port=${server.port} region=${REGION} seed=${SEED} chunk=65536 requests=20`;
      for (const land of ['buffer', 'region']) {
        const r = await transportNative(`${spec} land=${land}`);
        expect(r).toMatchObject({ land, n: 20, verified: true });
      }
    } finally {
      server.stop();
    }
    await expect(transportNative('land=cache source=tcp port=1')).rejects.toThrow(/land must be buffer or region, not 'cache'/);
    await expect(transportNative('op=ping land=region source=tcp port=1')).rejects.toThrow(/land=region is for op=read/);
  });
});
