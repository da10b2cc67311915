// `faultlab serve`: the chunk server on its own, e.g. on a second machine so a
// real network replaces the emulated one (then run bench with --remote HOST:PORT).
import type { CommandModule } from 'yargs';
import { constants as bufferConstants } from 'node:buffer';
import { ChunkServer } from '../server/chunk-server.js';
import { UsageError } from '../errors.js';
import { formatSize, parseSize } from '../sizes.js';
import { paramOption } from './cell-options.js';

/** "HOST:PORT", "[v6]:PORT", ":PORT" or "PORT" (host defaults to 127.0.0.1). */
export function parseHostPort(text: string, what = '--listen'): { host: string; port: number } {
  const m = /^(?:(?:\[([^\]]+)\]|([^:[\]]*)):)?(\d+)$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`bad ${what} '${text}': expected HOST:PORT, e.g. 127.0.0.1:7070 or 0.0.0.0:7070`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

/** Region sizes the chunk server can hold; a UsageError otherwise. */
export function checkServerRegion(bytes: number): void {
  if (bytes <= 0) throw new UsageError('--region must be larger than 0 bytes');
  if (bytes % 8) throw new UsageError(`--region ${bytes} bytes is not a multiple of 8 bytes`);
  if (bytes > bufferConstants.MAX_LENGTH) {
    throw new UsageError(`--region ${formatSize(bytes)} is larger than the chunk server can hold (${formatSize(bufferConstants.MAX_LENGTH)})`);
  }
}

export const serveCommand: CommandModule = {
  command: 'serve',
  describe: 'run the chunk server (contents = fill(seed, offset)) with emulated latency until Ctrl-C',
  builder: (y) =>
    y
      .option('listen', {
        type: 'string',
        default: '127.0.0.1:7070',
        describe: 'HOST:PORT to listen on (port 0: any free port); anything but loopback lets others read and write the region',
      })
      .option('region', paramOption('regionBytes', 'region size (4096, 4KiB, 64MiB, 1GiB); must match the client'))
      .option('seed', paramOption('seed', 'contents seed; must match the client'))
      .option('rtt', paramOption('rttMs', 'emulated round trip added to every request, ms')),
  handler: async (a) => {
    const { host, port } = parseHostPort(a.listen as string);
    const regionBytes = parseSize(a.region as string, 'region');
    checkServerRegion(regionBytes);
    const seed = a.seed as number;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${seed}: give a whole number >= 0`);
    const rttMs = a.rtt as number;
    if (!Number.isFinite(rttMs) || rttMs < 0 || rttMs > 10_000)
      throw new UsageError(`--rtt ${Number.isNaN(rttMs) ? 'needs a number' : rttMs}: give ms from 0 to 10000`);

    // A --listen address that cannot be used (port taken, address not on this
    // machine) is bad input: one line, exit 2, like any other option.
    const server = await ChunkServer.start({ host, port, regionBytes, seed, rttMs }).catch((e: Error) => {
      throw /^cannot listen on /.test(e.message) ? new UsageError(e.message) : e;
    });
    // Before anyone measures it; a server that cannot be warmed still serves.
    await server.warmUp().catch((e: Error) => console.error(`faultlab: warning: ${e.message}`));
    console.log(`listening on ${server.address} region=${formatSize(regionBytes)} seed=${seed} rtt=${rttMs} ms`);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    await server.close();
    const c = server.counters;
    console.log(
      `stopped (${signal}): ${c.connections} connections, ${c.requests} requests (${c.errors} refused), ` +
        `${formatSize(c.bytesRead)} read, ${formatSize(c.bytesWritten)} written`,
    );
  },
};
