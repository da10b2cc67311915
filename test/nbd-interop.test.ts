// The C NBD server against real NBD clients (libnbd's nbdinfo and nbdcopy):
// the size they see, every byte they copy out, a file copied in and back, and
// an answer at once while 1100 idle connections would hold the connection cap.
import { afterEach, describe, expect, it, type TestContext } from 'vitest';
import { execFile, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fill } from '../harness/native.js';
import { NbdServer, type NbdServerOptions } from '../harness/server/nbd-server.js';
import { skipBecause } from './skip.js';

const run = promisify(execFile);

function installed(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

function need(ctx: TestContext, ...tools: string[]): void {
  for (const tool of tools) if (!installed(tool)) skipBecause(ctx, `${tool} not installed (apt-get install libnbd-bin)`);
}

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

let servers: NbdServer[] = [];
let dirs: string[] = [];
afterEach(() => {
  for (const s of servers) s.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  servers = [];
  dirs = [];
});

function serve(opts: NbdServerOptions): { server: NbdServer; uri: string } {
  const server = NbdServer.start(opts);
  servers.push(server);
  return { server, uri: `nbd://127.0.0.1:${server.port}` };
}

function scratch(): string {
  const d = mkdtempSync(join(tmpdir(), 'faultlab-nbd-'));
  dirs.push(d);
  return d;
}

describe('the C NBD server with libnbd tools', () => {
  it('nbdinfo reports the size and block sizes', async (ctx) => {
    need(ctx, 'nbdinfo');
    const size = (5 << 20) + 4100;
    const { uri } = serve({ regionBytes: size, logFd: -1 });
    const { stdout } = await run('nbdinfo', ['--json', uri]);
    const info = JSON.parse(stdout) as { exports: Record<string, unknown>[] };
    expect(info.exports[0]['export-size']).toBe(size);
    expect(info.exports[0]['block_size_minimum']).toBe(1);
    expect(info.exports[0]['block_size_preferred']).toBe(4096);
    expect(info.exports[0]['block_size_maximum']).toBe(32 << 20);
    expect((await run('nbdinfo', ['--size', uri])).stdout.trim()).toBe(String(size));
  });

  it('nbdcopy out of the server equals fill(seed, 0..size)', async (ctx) => {
    need(ctx, 'nbdcopy');
    const size = (8 << 20) + 1000; // fill() takes whole 8-byte words
    const seed = 1234;
    const { server, uri } = serve({ regionBytes: size, seed, logFd: -1 });
    const dir = scratch();
    const want = Buffer.alloc(size);
    fill(want, seed, 0);
    writeFileSync(join(dir, 'want.img'), want);
    await run('nbdcopy', [uri, join(dir, 'out.img')]);
    expect(sha256(join(dir, 'out.img'))).toBe(sha256(join(dir, 'want.img')));
    expect(server.stats().bytes_read).toBeGreaterThanOrEqual(size);
  });

  it('nbdcopy of a file into the server and back out round-trips', async (ctx) => {
    need(ctx, 'nbdcopy');
    const size = (4 << 20) + 12345;
    const { server, uri } = serve({ regionBytes: size, seed: 9, logFd: -1 });
    const dir = scratch();
    const data = Buffer.alloc(size);
    for (let i = 0; i < size; i++) data[i] = (i * 2654435761) >>> 24;
    writeFileSync(join(dir, 'in.img'), data);
    await run('nbdcopy', [join(dir, 'in.img'), uri]);
    await run('nbdcopy', [uri, join(dir, 'back.img')]);
    expect(sha256(join(dir, 'back.img'))).toBe(sha256(join(dir, 'in.img')));
    const stats = server.stats();
    expect(stats.bytes_written).toBe(size);
    expect(stats.conns_closed_for_cause).toBe(0);
  });

  it('nbdinfo still gets its answer while 1100 idle connections are open', async (ctx) => {
    need(ctx, 'nbdinfo');
    const dir = scratch();
    const logPath = join(dir, 'server.log');
    const logFd = openSync(logPath, 'w');
    try {
      const { server, uri } = serve({ regionBytes: 1 << 20, handshakeTimeoutMs: 60_000, logFd });
      const idle = await Promise.all(
        Array.from(
          { length: 1100 },
          () =>
            new Promise<net.Socket>((resolve, reject) => {
              const s = net.connect(server.port, '127.0.0.1', () => resolve(s));
              s.on('error', reject);
            }),
        ),
      );
      try {
        // At the cap each newcomer displaces the connection longest in its
        // handshake; the timeout (a minute) frees no slot during the test.
        const { stdout } = await run('nbdinfo', ['--size', uri], { timeout: 10_000 });
        expect(stdout.trim()).toBe(String(1 << 20));
        const stats = server.stats();
        expect(stats.conns_refused).toBe(0);
        expect(stats.conns_closed_for_cause).toBe(1100 - 1024 + 1);
        const log = readFileSync(logPath, 'utf8');
        expect(log).toMatch(/faultlab nbd 127\.0\.0\.1:\d+: closed: handshake not finished after \d+ ms, its slot given to 127\.0\.0\.1:\d+ \(max_conns\)/);
        expect(log).not.toMatch(/refused/);
      } finally {
        for (const s of idle) s.destroy();
      }
    } finally {
      for (const s of servers) s.stop();
      servers = [];
      closeSync(logFd);
    }
  });
});
