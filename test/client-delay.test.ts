// latency client-delay: the C tcp source holds each answer until its request's
// send time + RTT (native/src/sources/tcp.c). Real server, real faults, real bytes.
import { afterAll, describe, expect, it } from 'vitest';
import { NbdServer } from '../harness/server/nbd-server.js';
import { rttProbeNative } from '../harness/native.js';
import { runCell } from '../harness/bench.js';
import { DEFAULTS } from '../harness/cell.js';

const bound = (ms: number) => Math.max(0.02 * ms, 0.05);
// CI machines are shared: the median may be late by this much on top of the bound.
const SLACK_MS = 0.15;

const servers: NbdServer[] = [];
afterAll(async () => {
  for (const s of servers) s.stop();
});
async function start(): Promise<NbdServer> {
  const s = NbdServer.start({ regionBytes: 8 << 20, seed: 5 }); // answers at once
  servers.push(s);
  return s;
}

describe('latency client-delay', () => {
  it('FLUSH round trips (the RTT probe) take the configured RTT: never early, the median within the bound (plus CI slack)', async () => {
    const s = await start();
    const target = { host: s.host, port: s.port, regionBytes: 8 << 20, seed: 5 };
    const base = (await rttProbeNative(target, 50)).medianMs;
    for (const [rtt, n] of [
      [0.5, 40],
      [2, 30],
      [10, 10],
    ]) {
      const m = await rttProbeNative({ ...target, clientRttMs: rtt }, n);
      const error = m.medianMs - rtt;
      console.log(`client-delay rtt ${rtt} ms: median ${m.medianMs.toFixed(3)} ms, min ${m.minMs.toFixed(3)} (base without delay ${base.toFixed(3)})`);
      expect(m.minMs).toBeGreaterThanOrEqual(rtt);
      expect(error).toBeLessThanOrEqual(bound(rtt) + SLACK_MS);
    }
  });

  for (const strategy of ['uffd', 'sigsegv'] as const) {
    it(`${strategy}: every fault waits one RTT (5 ms), the bytes verify, the row says client-delay`, async () => {
      const s = await start();
      const r = await runCell({
        ...DEFAULTS,
        strategy,
        scenario: 'read-seq',
        source: 'remote',
        remote: `${s.host}:${s.port}`,
        latency: 'client-delay',
        rttMs: 5,
        regionBytes: 8 << 20,
        chunkBytes: 1 << 20,
        seed: 5,
      });
      expect(r.summary.verified).toBe(true);
      expect(r.summary.latency).toBe('client-delay');
      expect(Number(r.summary.rtt_measured_ms)).toBeGreaterThanOrEqual(5);
      expect(Number(r.summary.fault_ns_p50)).toBeGreaterThanOrEqual(5e6); // one chunk, one round trip
      expect(Number(r.summary.total_ns)).toBeGreaterThanOrEqual(8 * 5e6);
    });
  }

  it('pipelined requests overlap: uffd ahead:8 reads 32 chunks at 20 ms in a few round trips, not 32', async () => {
    const s = await start();
    const r = await runCell({
      ...DEFAULTS,
      strategy: 'uffd',
      scenario: 'read-seq',
      source: 'remote',
      remote: `${s.host}:${s.port}`,
      latency: 'client-delay',
      rttMs: 20,
      regionBytes: 8 << 20,
      chunkBytes: 256 << 10,
      seed: 5,
      prefetch: 'ahead:8',
      depth: 8,
    });
    expect(r.summary.verified).toBe(true);
    const ms = Number(r.summary.total_ns) / 1e6;
    console.log(`uffd ahead:8, 32 chunks at 20 ms, client-delay: ${ms.toFixed(1)} ms`);
    expect(ms).toBeGreaterThanOrEqual(2 * 20); // at least the fault and one prefetch batch
    expect(ms).toBeLessThan(0.5 * 32 * 20); // serial round trips would take 640 ms
  });
});
