// `faultlab transport`: the transport floor, READ requests with no faults.
import type { CommandModule } from 'yargs';
import { rttProbeNative, transportNative } from '../native.js';
import { paramOption } from './cell-options.js';
import { parseSize } from '../sizes.js';
import { UsageError } from '../errors.js';
import { NbdServer, rttUs } from '../server/nbd-server.js';
import { parseRemote, remoteSpec, type RemoteTarget } from '../remote.js';

export const transportCommand: CommandModule = {
  command: 'transport',
  describe: 'raw request/response time of the NBD transport alone (no faults), per chunk size and RTT',
  builder: (y) =>
    y
      .option('remote', {
        type: 'string',
        describe: "an NBD server, nbd://HOST:PORT[/EXPORT] or HOST:PORT (default: start faultlab's on loopback)",
      })
      .option('region', paramOption('regionBytes'))
      .option('seed', paramOption('seed'))
      .option('chunk', paramOption('chunkBytes'))
      .option('rtt', paramOption('rttMs', 'emulated RTT (ms): of the embedded server, or held by the client with --latency client-delay'))
      .option('latency', {
        choices: ['server-delay', 'client-delay'] as const,
        default: 'server-delay' as const,
        describe: 'where the RTT is emulated (see bench --latency)',
      })
      .option('requests', { type: 'number', default: 1000 })
      .option('repeat', paramOption('repeat'))
      .option('cpus', paramOption('cpus'))
      .option('land', {
        choices: ['buffer', 'region'] as const,
        default: 'buffer' as const,
        describe:
          'where READs land: one reused buffer (cache-warm), or each at its own offset of a populated region-sized mapping, as a fault fetch lands (cache-cold)',
      })
      .option('json', { type: 'boolean', default: false }),
  handler: async (a) => {
    const region = parseSize(a.region as string, 'region');
    const chunk = parseSize(a.chunk as string, 'chunk');
    const requests = a.requests as number;
    if (!Number.isInteger(requests) || requests < 1) throw new UsageError('--requests must be a whole number from 1');
    const clientRttMs = a.latency === 'client-delay' ? (a.rtt as number) : 0;
    let server: NbdServer | null = null;
    let target: RemoteTarget;
    if (a.remote !== undefined) target = parseRemote(a.remote as string);
    else {
      // A C server on its own threads: nothing to warm up.
      server = NbdServer.start({ regionBytes: region, seed: a.seed as number, rttUs: rttUs(clientRttMs ? 0 : (a.rtt as number)) });
      target = { host: server.host, port: server.port };
    }
    try {
      const rtt = await rttProbeNative({ ...target, regionBytes: region, seed: a.seed as number, clientRttMs }, 10);
      const spec = `source=tcp ${remoteSpec(target)} region=${region} seed=${a.seed} chunk=${chunk} cpus=${a.cpus} requests=${requests} land=${a.land} client_rtt_us=${Math.round(clientRttMs * 1000)}`;
      const reps = [];
      for (let i = 0; i < (a.repeat as number); i++) reps.push(await transportNative(spec));
      const out = { chunk_bytes: chunk, land: a.land, rtt_ms: a.rtt, rtt_measured_ms: Number(rtt.medianMs.toFixed(4)), latency: a.latency, reps };
      if (a.json) console.log(JSON.stringify(out));
      else
        for (const r of reps)
          console.log(
            `chunk ${chunk} B into ${r.land}: p50 ${(Number(r.p50_ns) / 1000).toFixed(1)} us, p99 ${(Number(r.p99_ns) / 1000).toFixed(1)} us, ${Number(r.throughput_mibps).toFixed(1)} MiB/s, verified ${r.verified}`,
          );
    } finally {
      server?.stop();
    }
  },
};
