// Other NBD servers and tools with faultlab: `faultlab image` is what `faultlab
// serve` serves (nbdcopy out of the server equals the file), and runs pull
// with uffd and sigsegv from nbdkit serving that image (--remote
// nbd://HOST:PORT[/EXPORT] and HOST:PORT), verifying every byte.
import { afterAll, describe, expect, it, type TestContext } from 'vitest';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fill } from '../harness/native.js';
import { NbdServer } from '../harness/server/nbd-server.js';
import { CLI, faultlab } from './helpers.js';
import { skipBecause } from './skip.js';

const installed = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
function need(ctx: TestContext, tool: string, pkg: string): void {
  if (!installed(tool)) skipBecause(ctx, `${tool} not installed (apt-get install ${pkg})`);
}
const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

const dir = mkdtempSync(join(tmpdir(), 'faultlab-image-'));
const children: ChildProcess[] = [];
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  rmSync(dir, { recursive: true, force: true });
});

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** A child that prints `ready` on stdout (or, for nbdkit, accepts connections) once it serves. */
async function startChild(cmd: string, args: string[], port: number, readyText?: RegExp): Promise<ChildProcess> {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const end = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}: ${out}`);
    if (Date.now() > end) throw new Error(`${cmd} did not start: ${out}`);
    if (readyText ? readyText.test(out) : await accepts(port)) return child;
    await new Promise((r) => setTimeout(r, 50));
  }
}
const accepts = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
    s.on('error', () => resolve(false));
  });

describe('faultlab image', () => {
  it('writes fill(seed, offset), also for a size that is not a multiple of 8; bad input refused as usage', () => {
    const out = join(dir, 'small.img');
    const r = faultlab(['image', '--out', out, '--region', '12345', '--seed', '9']);
    expect(r.status, r.stderr).toBe(0);
    const want = Buffer.alloc(12352);
    fill(want, 9, 0);
    expect(readFileSync(out).equals(want.subarray(0, 12345))).toBe(true);
    expect(faultlab(['image', '--out', out, '--region', '0']).status).toBe(2);
    expect(faultlab(['image', '--out', join(dir, 'no', 'such', 'dir.img'), '--region', '4KiB']).stderr).toMatch(/cannot write --out/);
  });

  it('equals what faultlab serve of the same seed serves (nbdcopy out of it)', async (ctx) => {
    need(ctx, 'nbdcopy', 'libnbd-bin');
    const img = join(dir, 'serve.img');
    expect(faultlab(['image', '--out', img, '--region', '9MiB', '--seed', '4']).status).toBe(0);
    const port = await freePort();
    const serve = await startChild(process.execPath, [CLI, 'serve', '--listen', `127.0.0.1:${port}`, '--region', '9MiB', '--seed', '4'], port, /listening on/);
    const copy = join(dir, 'copy.img');
    const r = spawnSync('nbdcopy', [`nbd://127.0.0.1:${port}`, copy]);
    expect(r.status, r.stderr.toString()).toBe(0);
    serve.kill('SIGTERM');
    expect(statSync(copy).size).toBe(9 << 20);
    expect(sha256(copy)).toBe(sha256(img));
  });
});

describe('pulling from nbdkit', () => {
  it('uffd and sigsegv pull from nbdkit file IMAGE (nbd:// with and without an export name, and HOST:PORT) and verify', async (ctx) => {
    need(ctx, 'nbdkit', 'nbdkit');
    const img = join(dir, 'nbdkit.img');
    expect(faultlab(['image', '--out', img, '--region', '4MiB', '--seed', '6']).status).toBe(0);
    const port = await freePort();
    await startChild('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), '-e', 'disk', 'file', img], port);
    for (const [strategy, remote] of [
      ['uffd', `nbd://127.0.0.1:${port}`],
      ['sigsegv', `nbd://127.0.0.1:${port}/disk`],
      ['uffd', `127.0.0.1:${port}`],
    ]) {
      const r = faultlab(['bench', '--strategy', strategy, '--source', 'remote', '--remote', remote, '--region', '4MiB', '--seed', '6', '--json'], {}, 60_000);
      expect(r.status, `${strategy} ${remote}: ${r.stderr}`).toBe(0);
      const j = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(j).toMatchObject({ verified: true, bytes_fetched: 4 << 20, latency: 'external' });
    }
    // Another seed's image does not verify (nbdkit sends no seed to check first).
    const bad = faultlab(
      ['bench', '--strategy', 'uffd', '--source', 'remote', '--remote', `nbd://127.0.0.1:${port}`, '--region', '4MiB', '--seed', '7', '--json'],
      {},
      60_000,
    );
    expect(bad.status).toBe(3);
    // nbdkit serves its one export under any name; faultlab's server refuses a name it does not have, named in one line.
    const own = NbdServer.start({ regionBytes: 4 << 20, seed: 6, logFd: -1 });
    try {
      const none = faultlab(
        ['bench', '--strategy', 'uffd', '--source', 'remote', '--remote', `nbd://127.0.0.1:${own.port}/nope`, '--region', '4MiB', '--seed', '6'],
        {},
        60_000,
      );
      expect(none.status).toBe(1);
      expect(none.stderr).toMatch(/no export named 'nope'/);
      const named = faultlab(
        ['bench', '--strategy', 'uffd', '--source', 'remote', '--remote', `nbd://127.0.0.1:${own.port}/faultlab`, '--region', '4MiB', '--seed', '6', '--json'],
        {},
        60_000,
      );
      expect(named.status, named.stderr).toBe(0);
    } finally {
      own.stop();
    }
  });

  it('transport and run take nbd:// too', async (ctx) => {
    need(ctx, 'nbdkit', 'nbdkit');
    const img = join(dir, 'nbdkit2.img');
    expect(faultlab(['image', '--out', img, '--region', '2MiB']).status).toBe(0);
    const port = await freePort();
    await startChild('nbdkit', ['--foreground', '--exit-with-parent', '-i', '127.0.0.1', '-p', String(port), 'file', img], port);
    const t = faultlab(['transport', '--remote', `nbd://127.0.0.1:${port}`, '--region', '2MiB', '--chunk', '64KiB', '--requests', '32', '--json'], {}, 60_000);
    expect(t.status, t.stderr).toBe(0);
    expect(JSON.parse(t.stdout.trim()).reps[0].verified).toBe(true);
    // run takes the same forms (its cells pass it on to bench, as above).
    const r = faultlab(['run', '--matrix', 'quick', '--remote', `nbd://127.0.0.1:${port}/`, '--list'], {}, 60_000);
    expect(r.status, r.stderr).toBe(0);
    expect(faultlab(['run', '--matrix', 'quick', '--remote', 'nbd://127.0.0.1', '--list']).stderr).toMatch(/bad --remote 'nbd:\/\/127\.0\.0\.1'/);
  });
});
