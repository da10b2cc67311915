// `faultlab serve`: faultlab's NBD server (native/src/server/nbd_server.h) on
// its own, e.g. on a second machine so a real network replaces the emulated
// one (then run bench with --remote nbd://HOST:PORT). Contents fill(seed,
// offset), each reply held until its request's kernel receive time + --rtt.
// NBD has no authentication: anything but loopback must be asked for.
import type { CommandModule } from 'yargs';
import net from 'node:net';
import { NbdServer, rttUs } from '../server/nbd-server.js';
import { formatHostPort, isLoopback } from '../remote.js';
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

/** Region sizes the server can hold; a UsageError otherwise. */
export function checkServerRegion(bytes: number): void {
  if (bytes <= 0) throw new UsageError('--region must be larger than 0 bytes');
}

export const serveCommand: CommandModule = {
  command: 'serve',
  describe: 'run the NBD server (contents = fill(seed, offset)) with emulated latency until Ctrl-C',
  builder: (y) =>
    y
      .option('listen', {
        type: 'string',
        default: '127.0.0.1:7070',
        describe: 'HOST:PORT to listen on, HOST an IP address (port 0: any free port); anything but loopback needs --allow-remote',
      })
      .option('allow-remote', {
        type: 'boolean',
        default: false,
        describe: 'allow a --listen address other than loopback: NBD has no authentication, so anyone who can reach it reads and writes the region',
      })
      .option('region', paramOption('regionBytes', 'export size (4096, 4KiB, 64MiB, 1GiB, 1TiB: unwritten bytes cost nothing); at least the client region'))
      .option('seed', paramOption('seed', 'contents seed; must match the client (sent as NBD_INFO_DESCRIPTION "faultlab seed=N")'))
      .option('rtt', paramOption('rttMs', 'emulated round trip: each reply leaves at its request’s kernel receive time + this, ms')),
  handler: async (a) => {
    const { host, port } = parseHostPort(a.listen as string);
    if (!net.isIP(host)) throw new UsageError(`bad --listen '${a.listen}': HOST must be an IPv4 or IPv6 address, e.g. 127.0.0.1 or ::1`);
    const regionBytes = parseSize(a.region as string, 'region');
    checkServerRegion(regionBytes);
    const seed = a.seed as number;
    if (!Number.isSafeInteger(seed) || seed < 0) throw new UsageError(`--seed ${seed}: give a whole number >= 0`);
    const rttMs = a.rtt as number;
    if (!Number.isFinite(rttMs) || rttMs < 0 || rttMs > 10_000)
      throw new UsageError(`--rtt ${Number.isNaN(rttMs) ? 'needs a number' : rttMs}: give ms from 0 to 10000`);
    const where = formatHostPort(host, port);
    if (!isLoopback(host) && !a['allow-remote'])
      throw new UsageError(
        `--listen ${where} is not loopback: NBD has no authentication, so anyone who can reach it could read and overwrite the region; add --allow-remote to serve there anyway`,
      );

    // A --listen address that cannot be used (port taken, address not on this
    // machine) is bad input: one line, exit 2, like any other option.
    let server: NbdServer;
    try {
      // Refusals and closes for cause: one line each on stderr (log_fd 2).
      server = NbdServer.start({ listen: host, port, regionBytes, seed, rttUs: rttUs(rttMs), logFd: 2 });
    } catch (e) {
      const msg = (e as Error).message;
      if (/cannot listen on/.test(msg))
        throw new UsageError(
          /Address already in use/.test(msg) ? `cannot listen on ${where}: port ${port} in use` : `cannot listen on ${where}: ${msg.replace(/^.*: /, '')}`,
        );
      throw e;
    }
    if (!isLoopback(host))
      console.error(
        `faultlab: warning: the NBD server listens on ${server.address}, not loopback, and NBD has no authentication: anyone who can reach it can read and overwrite the region`,
      );
    console.log(`listening on ${server.address} (${server.uri}) region=${formatSize(regionBytes)} seed=${seed} rtt=${rttMs} ms`);
    // The server runs on C threads: this timer keeps Node's event loop (and so the process) alive until a signal.
    const keepAlive = setInterval(() => {}, 1 << 30);
    const signal = await new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGINT', resolve);
      process.once('SIGTERM', resolve);
    });
    clearInterval(keepAlive);
    const st = server.stats();
    server.stop();
    console.log(
      `stopped (${signal}): ${st.conns_accepted} connections (${st.conns_refused} refused, ${st.conns_closed_for_cause} closed for cause), ` +
        `${st.requests} requests (${st.errors} error replies), ${formatSize(st.bytes_read)} read, ${formatSize(st.bytes_written)} written, ` +
        `reply lateness p50 ${(st.late_p50_ns / 1000).toFixed(1)} us, max ${(st.late_max_ns / 1000).toFixed(1)} us`,
    );
    console.log(JSON.stringify(st));
  },
};
