// The native core driven through koffi, as the harness uses it: real regions,
// real page faults, every byte verified.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { NativeRegion, fill, verify } from '../harness/native.js';

async function run(spec: string, runSpec = 'workload=read-seq') {
  const r = await NativeRegion.create(spec);
  try {
    return await r.run(runSpec);
  } finally {
    r.destroy();
  }
}

describe('every strategy reads a real region and verifies it', () => {
  for (const strategy of ['uffd', 'sigsegv', 'memory', 'disk', 'eager']) {
    for (const workload of ['read-seq', 'read-random', 'first-chunk']) {
      it(`${strategy} ${workload}`, async () => {
        const r = await run(`strategy=${strategy} region=2MiB chunk=4KiB`, `workload=${workload}`);
        expect(r.verified).toBe(true);
        expect(r.bad_words).toBe(0);
        expect(r.chunks_touched).toBe(workload === 'first-chunk' ? 1 : 512);
        expect(Number(r.first_access_ns)).toBeGreaterThan(0);
      });
    }
  }
});

describe('fault count equals chunks touched', () => {
  for (const strategy of ['uffd', 'sigsegv']) {
    for (const chunk of [4096, 65536]) {
      it(`${strategy} with ${chunk / 1024} KiB chunks`, async () => {
        const region = 4 << 20;
        const r = await run(`strategy=${strategy} region=${region} chunk=${chunk}`);
        expect(r.faults).toBe(region / chunk);
        expect(r.bytes_fetched).toBe(region);
        expect(r.verified).toBe(true);
      });
    }
  }
});

describe('a corrupted chunk at the source is caught', () => {
  for (const strategy of ['uffd', 'sigsegv', 'eager']) {
    it(`${strategy}: verified=false naming the offset`, async () => {
      const r = await run(`strategy=${strategy} region=1MiB corrupt=70001`);
      expect(r.verified).toBe(false);
      expect(r.first_bad_offset).toBe(70000); // the 8-byte word holding the flipped byte
    });
  }
});

describe('contents are a function of (seed, offset)', () => {
  it('fill and verify agree, and disagree after a change', () => {
    const b = Buffer.alloc(4096);
    fill(b, 9, 8192);
    expect(verify(b, 9, 8192).bad).toBe(0);
    expect(verify(b, 10, 8192).bad).toBe(512);
    b[100] ^= 1;
    expect(verify(b, 9, 8192)).toEqual({ bad: 1, firstBad: 8192n + 96n });
  });
});

// WebAssembly module whose one function loads 4 bytes at 128 KiB from a 64 KiB
// memory: V8 turns the resulting SIGSEGV (guard region) into a RuntimeError.
const OOB_WASM = Buffer.from(
  '0061736d01000000' + '0105016000017f' + '03020100' + '050301000' + '1' + '07070103' + '6f6f62' + '0000' + '0a0b010900418080082802000b',
  'hex',
);

describe('sigsegv chains to the handler installed before it', () => {
  it('a WebAssembly out-of-bounds access still throws RuntimeError while a sigsegv region exists', async () => {
    const region = await NativeRegion.create('strategy=sigsegv region=1MiB');
    try {
      const { instance } = await WebAssembly.instantiate(OOB_WASM);
      expect(() => (instance.exports.oob as () => number)()).toThrow(WebAssembly.RuntimeError);
      const r = await region.run('workload=read-seq');
      expect(r.verified).toBe(true);
      expect(() => (instance.exports.oob as () => number)()).toThrow(WebAssembly.RuntimeError);
    } finally {
      region.destroy();
    }
  });

  it('a fault outside every region still crashes the process with SIGSEGV (child process)', () => {
    const script = `
      const { NativeRegion, touch } = await import(${JSON.stringify(new URL('../harness/native.ts', import.meta.url).pathname)});
      const r = NativeRegion.createSync('strategy=sigsegv region=1MiB');
      process.stdout.write('armed\\n');
      touch(16n);
      process.stdout.write('survived\\n');
    `;
    const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
    expect(res.stdout).toContain('armed');
    expect(res.stdout).not.toContain('survived');
    expect(res.signal).toBe('SIGSEGV');
  });
});

describe('bad specs are refused with one clear message', () => {
  const cases: [string, RegExp][] = [
    ['strategy=uffd chunk=1000', /not a multiple of the page size/],
    ['strategy=uffd region=0', /region of 0 bytes/],
    ['strategy=warp-drive', /unknown strategy 'warp-drive'/],
  ];
  for (const [spec, msg] of cases) it(spec, async () => expect(NativeRegion.create(spec)).rejects.toThrow(msg));
});
