// The NBD server's memory, measured in isolation for `faultlab targets remote`:
// each measure starts `faultlab serve` as a child process (the server runs on
// C threads inside whichever Node process embeds it, so only its own process
// shows what it costs) and reads that process's VmRSS/VmHWM from /proc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { childEnv } from './lifeline.js';
import { fill } from './native.js';

const cliPath = fileURLToPath(new URL('../../bin/faultlab.js', import.meta.url));
const MiB = 1 << 20;

/** A `faultlab serve` child on a free loopback port. */
export class ServeChild {
  private constructor(
    private readonly proc: ChildProcess,
    readonly port: number,
  ) {}

  static start(args: string[]): Promise<ServeChild> {
    const proc = spawn(process.execPath, [cliPath, 'serve', '--listen', '127.0.0.1:0', ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(),
    });
    let out = '';
    let err = '';
    return new Promise((resolve, reject) => {
      const fail = (why: string) => {
        proc.kill('SIGKILL');
        reject(new Error(`faultlab serve ${args.join(' ')}: ${why}${err ? `: ${err.trim().split('\n').pop()}` : ''}`));
      };
      const timer = setTimeout(() => fail('did not report its port within 20 s'), 20_000);
      proc.stderr!.on('data', (d) => (err += d));
      proc.stdout!.on('data', (d) => {
        out += d;
        const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
        if (!m) return;
        clearTimeout(timer);
        proc.stdout!.removeAllListeners('data');
        proc.stdout!.resume();
        resolve(new ServeChild(proc, Number(m[1])));
      });
      proc.once('exit', (code) => {
        clearTimeout(timer);
        fail(`exited (${code}) before listening`);
      });
    });
  }

  /** VmRSS and VmHWM (peak) in MiB. */
  memory(): { rssMiB: number; hwmMiB: number } {
    const status = readFileSync(`/proc/${this.proc.pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssMiB: kb('VmRSS') / 1024, hwmMiB: kb('VmHWM') / 1024 };
  }

  /** Reset VmHWM to the current VmRSS (clear_refs 5), so a later VmHWM is this measure's peak. */
  resetPeak(): void {
    writeFileSync(`/proc/${this.proc.pid}/clear_refs`, '5');
  }

  stop(): Promise<void> {
    if (this.proc.exitCode !== null || this.proc.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      this.proc.once('exit', () => resolve());
      this.proc.kill('SIGTERM');
      setTimeout(() => this.proc.kill('SIGKILL'), 5000).unref();
    });
  }
}

/** A bare NBD client over one socket: NBD_OPT_EXPORT_NAME, then simple requests. */
class RawNbd {
  private buf: Buffer = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private ended: Error | null = null;
  private cookie = 1n;

  private constructor(readonly sock: net.Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.wake?.();
    });
    const end = (e?: Error) => {
      this.ended ??= e ?? new Error('connection closed by the server');
      this.wake?.();
    };
    sock.on('close', () => end());
    sock.on('error', end);
  }

  static async open(port: number): Promise<RawNbd> {
    const sock = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
      s.once('error', reject);
    });
    sock.setNoDelay(true);
    const c = new RawNbd(sock);
    await c.take(18); // NBDMAGIC, IHAVEOPT, handshake flags
    const opt = Buffer.alloc(20);
    opt.writeUInt32BE(3, 0); // client flags: FIXED_NEWSTYLE | NO_ZEROES
    opt.writeBigUInt64BE(0x49484156454f5054n, 4); // IHAVEOPT
    opt.writeUInt32BE(1, 12); // NBD_OPT_EXPORT_NAME, the empty (default) name
    sock.write(opt);
    await c.take(10); // export size, transmission flags
    return c;
  }

  async take(n: number, timeoutMs = 30_000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n) {
      if (this.ended) throw this.ended;
      if (Date.now() > deadline) throw new Error(`NBD: no answer within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 100);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = null;
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Sends a request (READ 0, WRITE 1) without waiting for its reply. */
  send(type: number, offset: number, len: number, payload?: Buffer): void {
    const h = Buffer.alloc(28);
    h.writeUInt32BE(0x25609513, 0);
    h.writeUInt16BE(type, 6);
    h.writeBigUInt64BE(this.cookie++, 8);
    h.writeBigUInt64BE(BigInt(offset), 16);
    h.writeUInt32BE(len, 24);
    this.sock.write(payload ? Buffer.concat([h, payload]) : h);
  }

  /** Waits for one simple reply; its data when it answers a READ of `len` bytes. */
  async reply(len = 0): Promise<Buffer> {
    const h = await this.take(16);
    if (h.readUInt32BE(0) !== 0x67446698) throw new Error('NBD: not a simple reply');
    if (h.readUInt32BE(4)) throw new Error(`NBD: error reply ${h.readUInt32BE(4)}`);
    return this.take(len);
  }

  close(): void {
    this.sock.destroy();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The issue's hostile reader: one connection sends a WRITE and then 100 READs of
 * 16 MiB and reads no reply. The server's memory growth (its VmHWM over its VmRSS
 * before) while it answers; the reply bytes received once reading resumes show it
 * did answer. */
export async function hostileReaderGrowthMiB(rttMs: number): Promise<number> {
  const server = await ServeChild.start(['--region', '2GiB', '--rtt', String(rttMs)]);
  try {
    const c = await RawNbd.open(server.port);
    await sleep(200);
    const before = server.memory().rssMiB;
    server.resetPeak();
    c.sock.pause(); // from now on nothing is read
    const data = Buffer.alloc(4096);
    fill(data, 1, 0);
    c.send(1, 0, data.length, data);
    for (let i = 0; i < 100; i++) c.send(0, (i % 128) * 16 * MiB, 16 * MiB);
    // Long enough for the server to read all it will and queue all it may.
    await sleep(1500 + 100 * rttMs);
    const grown = server.memory().hwmMiB - before;
    c.sock.resume();
    await c.reply(); // the WRITE's
    await c.reply(16 * MiB); // the first READ's
    c.close();
    return grown;
  } finally {
    await server.stop();
  }
}

/** A 1 TiB region served after scattered reads and writes: the server's peak resident MiB. */
export async function terabyteRegionPeakMiB(): Promise<number> {
  const TiB = 2 ** 40;
  const server = await ServeChild.start(['--region', '1TiB']);
  try {
    const c = await RawNbd.open(server.port);
    const chunk = MiB;
    const written = Buffer.alloc(64 << 10, 0x5a);
    for (let i = 0; i < 256; i++) {
      const off = Math.floor((i * TiB) / 256);
      c.send(0, off, chunk);
      const got = await c.reply(chunk);
      const want = Buffer.alloc(chunk);
      fill(want, 1, off);
      if (!got.equals(want)) throw new Error(`1 TiB region: READ at ${off} did not return fill(1, ${off})`);
      c.send(1, off + 8 * MiB, written.length, written);
      await c.reply();
    }
    c.send(0, 8 * MiB, written.length);
    if (!(await c.reply(written.length)).equals(written)) throw new Error('1 TiB region: a written range did not read back');
    c.close();
    return server.memory().hwmMiB;
  } finally {
    await server.stop();
  }
}

/** With 1,100 idle connections open (past the server's 1024), the seconds until
 * `nbdinfo --size` gets its answer (null: none within 60 s); or why it could not run. */
export async function idleConnectionsAnswerSeconds(): Promise<{ seconds: number | null } | { skipped: string }> {
  if (spawnSync('sh', ['-c', 'command -v nbdinfo']).status !== 0) return { skipped: 'nbdinfo not installed (apt-get install libnbd-bin)' };
  const server = await ServeChild.start(['--region', '1MiB']);
  const idle: net.Socket[] = [];
  try {
    for (let i = 0; i < 1100; i++)
      idle.push(
        await new Promise<net.Socket>((resolve, reject) => {
          const s = net.connect(server.port, '127.0.0.1', () => resolve(s));
          s.on('error', reject);
        }),
      );
    const t0 = Date.now();
    while (Date.now() - t0 < 60_000) {
      const r = spawnSync('nbdinfo', ['--size', `nbd://127.0.0.1:${server.port}`], { encoding: 'utf8', timeout: 10_000 });
      if (r.status === 0 && r.stdout.trim() === String(MiB)) return { seconds: (Date.now() - t0) / 1000 };
      await sleep(200);
    }
    return { seconds: null };
  } finally {
    for (const s of idle) s.destroy();
    await server.stop();
  }
}
