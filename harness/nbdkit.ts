// `--latency nbdkit-delay`: a second, external latency emulation. The region's
// contents are written as an image (the same bytes as `faultlab image`), and
// `nbdkit --filter=delay file IMAGE delay-read=RTTms delay-write=RTTms` serves
// them on a free loopback port for one cell, then is stopped and the image
// removed. nbdkit's delay filter sleeps in the worker thread before the request
// is passed on (docs/latency.md); server-delay holds each reply until its
// request's receive time + RTT.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsageError } from './errors.js';
import { writeImage } from './commands/image.js';
import type { MatrixCell } from './matrix.js';

/** Whether a cell pulls through nbdkit's delay filter (its own latency, else the run's). */
export const usesNbdkit = (c: MatrixCell, runLatency?: string): boolean =>
  c.kind === 'cell' && c.params.source === 'remote' && (c.params.latency ?? runLatency) === 'nbdkit-delay';

/** Why nbdkit-delay cannot run here (nbdkit or its delay filter is missing), or null. */
export function nbdkitMissing(): string | null {
  const r = spawnSync('nbdkit', ['--filter=delay', '--dump-plugin', 'file'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error) return 'nbdkit is not installed (apt-get install nbdkit)';
  if (r.status !== 0) return `nbdkit's delay filter or file plugin is missing: ${(r.stderr || '').trim().split('\n')[0]}`;
  return null;
}

/** A free loopback port, as the kernel picks it (nbdkit takes a port number, not 0). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface NbdkitRemote {
  host: string;
  port: number;
  close(): Promise<void>;
}

/** nbdkit's delay filter serving fill(seed, 0..regionBytes) on loopback, each READ and WRITE delayed by rttMs (whole ms). */
export async function startNbdkitDelay(o: { rttMs: number; regionBytes: number; seed: number }): Promise<NbdkitRemote> {
  const missing = nbdkitMissing();
  if (missing) throw new UsageError(`--latency nbdkit-delay: ${missing}`);
  if (!Number.isInteger(o.rttMs) || o.rttMs < 0) throw new UsageError(`--latency nbdkit-delay takes whole ms, not --rtt ${o.rttMs}`);
  const dir = mkdtempSync(join(tmpdir(), 'faultlab-nbdkit-'));
  const image = join(dir, 'region.img');
  let proc: ChildProcess | null = null;
  const cleanup = async () => {
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const p = proc;
      await new Promise<void>((resolve) => {
        p.once('exit', () => resolve());
        p.kill('SIGTERM');
        setTimeout(() => p.kill('SIGKILL'), 5000).unref();
      });
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    writeImage(image, o.regionBytes, o.seed);
    // A port taken between freePort() and nbdkit's bind: try another.
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = await freePort();
      let stderr = '';
      const child = spawn(
        'nbdkit',
        [
          '-f',
          '--exit-with-parent',
          '-i',
          '127.0.0.1',
          '-p',
          String(port),
          '--filter=delay',
          'file',
          image,
          `delay-read=${o.rttMs}ms`,
          `delay-write=${o.rttMs}ms`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      proc = child;
      child.stderr!.on('data', (d) => (stderr += d));
      const t0 = Date.now();
      while (child.exitCode === null && Date.now() - t0 < 10_000) {
        if (await accepts(port)) return { host: '127.0.0.1', port, close: cleanup };
        await new Promise((r) => setTimeout(r, 20));
      }
      if (child.exitCode === null) throw new Error(`nbdkit did not accept connections on 127.0.0.1:${port} within 10 s`);
      if (!/bind|address already in use/i.test(stderr)) throw new Error(`nbdkit exited (${child.exitCode}): ${stderr.trim().split('\n').pop()}`);
    }
    throw new Error('nbdkit: no free loopback port after 5 tries');
  } catch (e) {
    await cleanup();
    throw e;
  }
}
