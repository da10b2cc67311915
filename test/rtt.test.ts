// Emulated latency: precise, never early, independent per request, in order per connection.
import { afterAll, describe, expect, it } from 'vitest';
import { ChunkServer } from '../harness/server/chunk-server.js';
import { ChunkClient, measureRtt } from '../harness/server/rtt-probe.js';
import { Op, Status, encodeRequest } from '../harness/server/protocol.js';
import { nowNs, rttProbeNative, rttTraceNative } from '../harness/native.js';
import { calibrate } from '../harness/commands/calibrate.js';

const bound = (ms: number) => Math.max(0.02 * ms, 0.05);
// An answer leaves the server at its request's kernel receive time + RTT, so a
// client's round trip is the RTT plus the loopback's way there and back. That
// is measured in each test, against a server at RTT 0 with the same client
// (loopbackMs), and the acceptance bound adds three times its p95 plus 2 % of
// the RTT (timer wake-ups) as the stated margin; `faultlab calibrate` reports
// the exact errors on a quiet machine, with a C control.
const platformSlackMs = (rtt: number, loopbackMs: number) => 3 * loopbackMs + 0.02 * rtt;

const servers: ChunkServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});
async function start(rttMs: number): Promise<ChunkServer> {
  const s = await ChunkServer.start({ regionBytes: 1 << 20, seed: 3, rttMs });
  servers.push(s);
  return s;
}

describe('emulated RTT', () => {
  it('measured RTT matches the configured one', async () => {
    const zero = await start(0);
    const loopbackMs = (await measureRtt(zero.host, zero.port, 200)).p95Ms;
    const rows: string[] = [`loopback at RTT 0: p95 ${(loopbackMs * 1000).toFixed(0)} us`];
    for (const [rtt, samples] of [
      [0.5, 60],
      [2, 40],
      [10, 15],
    ]) {
      const s = await start(rtt);
      // A stall of the whole VM (the host's, seen once in a full test run as a
      // server late p50 of 52 us at 0.5 ms, where it is 0.1-0.2 us otherwise, even
      // with both cores busy) is not the emulation's: up to three tries, each
      // printed, the last one judged.
      let m = await measureRtt(s.host, s.port, samples);
      let late = { p50Us: NaN };
      for (let attempt = 1; ; attempt++) {
        await s.settled();
        late = s.lateness();
        rows.push(
          `rtt ${rtt} ms, try ${attempt}: median ${m.medianMs.toFixed(3)} (error ${((m.medianMs - rtt) * 1000).toFixed(0)} us), server late p50 ${late.p50Us.toFixed(1)} us`,
        );
        const early = m.minMs < rtt || late.p50Us < 0; // never retried: judged below
        const within = late.p50Us <= bound(rtt) * 1000 && m.medianMs - rtt <= bound(rtt) + platformSlackMs(rtt, loopbackMs);
        if (early || within || attempt === 3) break;
        s.resetLateness();
        m = await measureRtt(s.host, s.port, samples);
      }
      const error = m.medianMs - rtt;
      expect(m.minMs).toBeGreaterThanOrEqual(rtt); // never early
      // The server's sends: never before the deadline, and within the bound.
      expect(late.p50Us).toBeGreaterThanOrEqual(0);
      expect(late.p50Us).toBeLessThanOrEqual(bound(rtt) * 1000);
      expect(error).toBeLessThanOrEqual(bound(rtt) + platformSlackMs(rtt, loopbackMs)); // what a client sees
    }
    console.log(rows.join('\n'));
  });

  it("the C tcp client (the strategies' own, as in every row and in calibrate) measures the RTT, never early", async () => {
    const probe = (s: ChunkServer, n: number) => rttProbeNative({ host: s.host, port: s.port, regionBytes: 1 << 20, seed: 3 }, n);
    const loopbackMs = (await probe(await start(0), 200)).p95Ms;
    console.log(`C probe: loopback at RTT 0: p95 ${(loopbackMs * 1000).toFixed(0)} us`);
    for (const [rtt, samples] of [
      [2, 30],
      [10, 10],
    ]) {
      const s = await start(rtt);
      // As above: a stall of the whole VM is not the emulation's; up to three
      // tries, each printed, the last judged, an early answer never retried.
      let m = await probe(s, samples);
      for (let attempt = 1; ; attempt++) {
        console.log(`C probe: rtt ${rtt} ms, try ${attempt}: median ${m.medianMs.toFixed(3)} (error ${((m.medianMs - rtt) * 1000).toFixed(0)} us)`);
        const early = m.minMs < rtt;
        if (early || m.medianMs - rtt <= bound(rtt) + platformSlackMs(rtt, loopbackMs) || attempt === 3) break;
        m = await probe(s, samples);
      }
      const error = m.medianMs - rtt;
      expect(m.minMs).toBeGreaterThanOrEqual(rtt);
      expect(error).toBeLessThanOrEqual(bound(rtt) + platformSlackMs(rtt, loopbackMs));
    }
  });

  it('traced PINGs line up on one clock: sent < received by the server (kernel time); the send began and the client received no earlier than that + RTT; in order', async () => {
    const rtt = 2;
    const s = await ChunkServer.start({ regionBytes: 1 << 20, seed: 3, rttMs: rtt, trace: true });
    servers.push(s);
    const n = 20;
    const c = await rttTraceNative({ host: s.host, port: s.port, regionBytes: 1 << 20, seed: 3 }, n);
    await s.settled();
    const pings = s
      .trace()
      .filter((t) => t.op === Op.PING)
      .slice(-n);
    expect(pings.length).toBe(n);
    expect(c.sentNs.length).toBe(n);
    const rttNs = BigInt(rtt * 1e6);
    for (let i = 0; i < n; i++) {
      expect(c.sentNs[i] < pings[i].receivedNs, `ping ${i}: sent before the server received it`).toBe(true);
      expect(pings[i].deadlineNs).toBe(pings[i].receivedNs + rttNs);
      expect(pings[i].writtenNs >= pings[i].deadlineNs, `ping ${i}: sent at or after its deadline`).toBe(true);
      expect(c.receivedNs[i] >= pings[i].deadlineNs, `ping ${i}: received no earlier than read + RTT`).toBe(true);
      if (i) expect(pings[i].receivedNs > c.receivedNs[i - 1], `ping ${i}: sent after the previous answer`).toBe(true);
    }
  });

  it('calibrate --breakdown: the parts of a 2 ms round trip, never early, from the same PINGs as the table', async () => {
    const cal = await calibrate([2], 15, { breakdown: true });
    const rows = cal.breakdown!;
    expect(rows.map((r) => r.configuredMs)).toEqual([0, 2]);
    for (const r of rows) {
      expect(r.toServerUs).toBeGreaterThan(0);
      expect(r.serverLateUs).toBeGreaterThanOrEqual(0);
      expect(r.excessUs).toBeGreaterThan(0);
    }
    // The table's server-delay median at 2 ms and the breakdown's excess come from one set of PINGs.
    expect(cal.rows[0].modes['server-delay'].medianMs * 1000 - 2000).toBeCloseTo(rows[1].excessUs, -1);
    console.log(JSON.stringify(rows));
  });

  it('the C probe refuses a server whose region is smaller than its own, naming both sizes', async () => {
    const s = await start(0);
    await expect(rttProbeNative({ host: s.host, port: s.port, regionBytes: 1 << 21, seed: 3 }, 3)).rejects.toThrow(
      /server region is 1048576 bytes, smaller than this run's 2097152/,
    );
  });

  it('concurrent requests overlap: 8 connections at 20 ms take about 20 ms, not 160', async () => {
    const s = await start(20);
    const clients = await Promise.all(Array.from({ length: 8 }, () => ChunkClient.connect(s.host, s.port)));
    try {
      const t0 = nowNs();
      const answers = await Promise.all(clients.map((c, i) => c.request(Op.READ, i * 4096, 4096)));
      const ms = Number(nowNs() - t0) / 1e6;
      for (const a of answers) expect(a.header.status).toBe(Status.OK);
      expect(ms).toBeGreaterThanOrEqual(20);
      expect(ms).toBeLessThan(2 * 20);
    } finally {
      for (const c of clients) c.close();
    }
  });

  it('pipelined requests on one connection overlap and stay in order', async () => {
    const s = await start(20);
    const c = await ChunkClient.connect(s.host, s.port);
    try {
      const t0 = nowNs();
      const reqs = Array.from({ length: 8 }, (_, i) => encodeRequest({ op: Op.READ, len: 64, offset: (7 - i) * 64 }));
      const answers = await Promise.all(c.sendRaw(Buffer.concat(reqs), 8));
      const ms = Number(nowNs() - t0) / 1e6;
      expect(answers.map((a) => Number(a.header.value))).toEqual([7, 6, 5, 4, 3, 2, 1, 0].map((i) => i * 64));
      expect(ms).toBeGreaterThanOrEqual(20);
      expect(ms).toBeLessThan(2 * 20);
    } finally {
      c.close();
    }
  });
});
