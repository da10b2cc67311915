// Push and migrate as a user meets them (the CLI, real processes, a real TCP
// chunk server): trackers report exactly the chunks written, write-track ends
// verified over TCP, a write the tracker cannot see fails verification, and a
// migration between two processes ends with the destination equal to the
// source. A tracker this kernel cannot run is checked for its clear refusal,
// and the test's name says so.
import { describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { CLI, faultlab, lastJson } from './helpers.js';
import { NbdServer } from '../harness/server/nbd-server.js';
import { NbdClient } from './nbd-wire.js';
import { doctorNative, fill } from '../harness/native.js';
import { loadMatrix, type MatrixCell } from '../harness/matrix.js';
import { createHash } from 'node:crypto';

const EXACT = ['uffd-wp', 'uffd-wp-async', 'mprotect'] as const;
const softDirty = (doctorNative().soft_dirty as { supported: boolean }).supported;
const wpAsync = ((doctorNative().uffd_api as { features?: string[] }).features ?? []).includes('WP_ASYNC');

/** The CLI without blocking this process's event loop (an in-process chunk server must answer). */
function faultlabAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

const wt = (strategy: string, extra: string[] = [], region = '4MiB', fraction = '0.05') => [
  'bench',
  '--strategy',
  strategy,
  '--scenario',
  'write-track',
  '--region',
  region,
  '--write-fraction',
  fraction,
  '--intervals',
  '3',
  '--json',
  ...extra,
];

describe('write-track: every tracker reports exactly the chunks written', () => {
  for (const strategy of EXACT) {
    const name = strategy === 'uffd-wp-async' && !wpAsync ? `${strategy}: refused on this kernel (no WP_ASYNC)` : `${strategy} random writes, 3 intervals`;
    it(
      name,
      () => {
        const r = faultlab(wt(strategy, ['--pattern', 'random']));
        if (strategy === 'uffd-wp-async' && !wpAsync) {
          expect(r.stderr).toMatch(/needs WP_ASYNC/);
          return;
        }
        expect(r.status, r.stderr).toBe(0);
        const j = lastJson(r.stdout);
        expect(j.tracker_exact).toBe(true);
        expect(j.missed_chunks).toBe(0);
        expect(j.extra_chunks).toBe(0);
        // random writes distinct chunks: one dirty chunk per write, every interval
        expect(j.dirty_chunks).toBe(Array(3).fill(j.writes_per_interval).join(';'));
        expect(j.bytes_pushed).toBe(j.bytes_written);
        expect(j.verified).toBe(true);
      },
      60_000,
    );
  }

  it('hot writes re-write chunks: fewer chunks pushed than writes made (amplification below 1), still exact', () => {
    const r = faultlab(wt('uffd-wp', ['--pattern', 'hot'], '4MiB', '0.2'));
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.tracker_exact).toBe(true);
    expect(j.write_amplification as number).toBeLessThan(1);
  }, 60_000);

  it('none tracks nothing: every chunk pushed each interval, verified, and no write overhead to speak of', () => {
    const r = faultlab(wt('none'));
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.dirty_chunks).toBe('1024;1024;1024');
    expect(j.verified).toBe(true);
    expect(j.faults).toBe(0);
  }, 60_000);

  it(
    softDirty ? 'soft-dirty reports exactly the chunks written' : 'soft-dirty: refused on this kernel, which lacks CONFIG_MEM_SOFT_DIRTY, with that reason',
    () => {
      const r = faultlab(wt('soft-dirty'));
      if (softDirty) {
        expect(r.status, r.stderr).toBe(0);
        expect(lastJson(r.stdout).tracker_exact).toBe(true);
      } else {
        expect(r.status).toBe(1);
        expect(r.stderr).toMatch(/soft-dirty unsupported by this kernel \(CONFIG_MEM_SOFT_DIRTY\)/);
      }
    },
    60_000,
  );
});

describe('write-track over a real NBD server (the C server)', () => {
  for (const strategy of [...EXACT, 'none']) {
    const unsupported = strategy === 'uffd-wp-async' && !wpAsync ? ' (REFUSED: this kernel lacks WP_ASYNC, Linux 6.7+)' : '';
    it(`${strategy}: pushes arrive as WRITEs and the read-back matches byte for byte${unsupported}`, async () => {
      if (unsupported) return expect(faultlab(wt(strategy)).stderr).toMatch(/needs WP_ASYNC/);
      const region = 4 << 20;
      const server = NbdServer.start({ regionBytes: region, seed: 1 });
      try {
        const r = await faultlabAsync(wt(strategy, ['--source', 'remote', '--remote', server.address]));
        expect(r.status, r.stderr).toBe(0);
        const j = lastJson(r.stdout);
        expect(j.verified).toBe(true);
        expect(j.source).toBe('remote');
        // the initial full push, then exactly the bytes the tracker pushed
        expect(server.stats().bytes_written).toBe(region + (j.bytes_pushed as number));
        // The server's contents now, read back over NBD.
        const c = await NbdClient.open(server.port);
        const parts: Buffer[] = [];
        for (let off = 0; off < region; off += 1 << 20) parts.push((await c.read(off, 1 << 20)).data);
        const now = Buffer.concat(parts);
        c.close();
        expect(now.length).toBe(region);
        const pristine = Buffer.alloc(4096);
        let changed = 0;
        for (let off = 0; off < region; off += 4096) {
          fill(pristine, 1, off);
          if (!now.subarray(off, off + 4096).equals(pristine)) changed++;
        }
        expect(changed).toBeGreaterThan(0);
        expect(changed * 4096).toBeLessThanOrEqual(j.bytes_pushed as number);
      } finally {
        server.stop();
      }
    }, 60_000);
  }

  it('at 2 ms RTT (embedded server) the measured RTT is recorded and the result still verifies', () => {
    const r = faultlab(wt('uffd-wp-async', ['--source', 'remote', '--rtt', '2'], '1MiB'));
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.rtt_measured_ms as number).toBeGreaterThan(1.9);
    expect(j.push_ns_total as number).toBeGreaterThan(2e6 * 0.95 * (j.push_requests as number));
  }, 60_000);
});

describe('a write the tracker cannot see is caught by the final comparison', () => {
  for (const strategy of EXACT) {
    const unsupported = strategy === 'uffd-wp-async' && !wpAsync ? ' (REFUSED: this kernel lacks WP_ASYNC, Linux 6.7+)' : '';
    it(`${strategy}: one write through a second mapping -> verified false, exit 3${unsupported}`, () => {
      if (unsupported) return expect(faultlab(wt(strategy)).stderr).toMatch(/needs WP_ASYNC/);
      const r = faultlab(wt(strategy, ['--inject-untracked']));
      expect(r.status).toBe(3);
      const j = lastJson(r.stdout);
      expect(j.verified).toBe(false);
      expect(j.missed_chunks).toBe(1);
      expect(j.bad_chunks).toBe(1);
      expect(j.first_bad_offset).toBe(j.injected_offset);
      expect(r.stderr).toMatch(/verification FAILED/);
    }, 60_000);
  }
});

describe('migrate: two processes, a real socket, the destination ends equal to the source', () => {
  const CHUNKS = 512; // 2 MiB of 4 KiB chunks
  for (const mode of ['precopy', 'postcopy', 'hybrid'] as const)
    for (const strategy of ['uffd', 'sigsegv'])
      for (const rtt of [0, 2])
        it(`${mode}, ${strategy} destination at ${rtt} ms RTT`, () => {
          const args = ['bench', '--strategy', strategy, '--scenario', 'migrate', '--source', 'remote', '--rtt', `${rtt}`, '--region', '2MiB', '--mode', mode];
          if (mode === 'hybrid') args.push('--postcopy-after', '2');
          const r = faultlab([...args, '--json'], {}, 180_000);
          expect(r.status, r.stderr).toBe(0);
          const j = lastJson(r.stdout);
          expect(j.verified).toBe(true);
          expect(j.bad_chunks).toBe(0);
          expect(j.migrate_mode).toBe(mode);
          expect(j.dest_prefetch).toBe('background');
          // Every chunk reached the destination once: by a fault or by its background pull.
          expect((j.faults as number) + (j.prefetched as number)).toBe(CHUNKS);
          expect(j.network_faults as number).toBeGreaterThanOrEqual(1); // the first access always waits
          expect(j.intervals_written as number).toBeGreaterThanOrEqual(mode === 'postcopy' ? 1 : 0);
          const rounds = j.precopy_rounds as number;
          const lists = ['round_dirty_chunks', 'round_push_ns', 'round_collect_ns'].map((k) => (j[k] === '' ? [] : String(j[k]).split(';')));
          for (const l of lists) expect(l.length).toBe(rounds);
          if (mode === 'precopy') {
            expect(rounds).toBeGreaterThanOrEqual(1);
            expect(j.stop_reason).toBe('converged'); // 2 MiB fits 300 ms at any of these RTTs
            expect(Number(lists[0][0])).toBe(CHUNKS); // round 0: everything
            expect(j.bytes_moved as number).toBeGreaterThanOrEqual(2 * (2 << 20)); // round 0 push + every chunk pulled
            expect(j.downtime_ns).toBe((j.final_push_ns as number) + (j.resume_ns as number));
            expect(j.postcopy_ns).toBeNull();
          } else {
            expect(rounds).toBe(mode === 'hybrid' ? 2 : 0);
            expect(j.stop_reason).toBe(mode === 'hybrid' ? 'postcopy-after' : 'postcopy');
            expect(j.final_dirty_chunks).toBe(0); // nothing pushed at the stop: the destination pulls from the source
            expect(j.bytes_pushed).toBe(mode === 'hybrid' ? (j.bytes_pushed as number) : 0);
            expect(j.postcopy_ns).toBe(j.pull_ns);
            expect(j.postcopy_faults).toBe(j.network_faults);
          }
          if (rtt > 0) expect(j.downtime_ns as number).toBeGreaterThan(rtt * 1e6 * 0.9); // at least the first pull's round trip
          expect(j.migration_ns as number).toBeGreaterThan(j.downtime_ns as number);
        }, 180_000);

  it('--dest-prefetch none: background threads touch every chunk, each a fault', () => {
    const r = faultlab(
      ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--region', '2MiB', '--dest-prefetch', 'none', '--json'],
      {},
      180_000,
    );
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.faults).toBe(CHUNKS);
    expect(j.prefetched).toBe(0);
  }, 180_000);

  it('--downtime-limit 0 never converges: --max-rounds pushes, then stop and copy', () => {
    const r = faultlab(
      [
        'bench',
        '--strategy',
        'sigsegv',
        '--scenario',
        'migrate',
        '--source',
        'remote',
        '--region',
        '2MiB',
        '--downtime-limit',
        '0',
        '--max-rounds',
        '3',
        '--json',
      ],
      {},
      180_000,
    );
    expect(r.status, r.stderr).toBe(0);
    const j = lastJson(r.stdout);
    expect(j.verified).toBe(true);
    expect(j.precopy_rounds).toBe(3);
    expect(j.stop_reason).toBe('max-rounds');
    expect(j.downtime_limit_ms).toBe(0);
  }, 180_000);
});

describe('bad push input: one clear line, exit 2', () => {
  const cases: [string, string[], RegExp][] = [
    ['a tracker on a read scenario', ['bench', '--strategy', 'uffd-wp', '--scenario', 'read-seq'], /is a tracker/],
    ['write-track with a pull strategy', ['bench', '--strategy', 'uffd', '--scenario', 'write-track'], /needs a tracker strategy/],
    ['migrate without a remote', ['bench', '--strategy', 'uffd', '--scenario', 'migrate'], /migrate needs --source remote/],
    ['migrate to a non-lazy destination', ['bench', '--strategy', 'eager', '--scenario', 'migrate', '--source', 'remote'], /uffd or sigsegv/],
    [
      'an unknown migrate mode',
      ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--mode', 'x'],
      /mode, Given: "x", Choices: "precopy", "postcopy", "hybrid"/,
    ],
    [
      '--postcopy-after without hybrid',
      ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--postcopy-after', '2'],
      /--postcopy-after is for --mode hybrid/,
    ],
    [
      '--dest-prefetch on a read scenario',
      ['bench', '--strategy', 'uffd', '--scenario', 'read-seq', '--dest-prefetch', 'background'],
      /are for --scenario migrate/,
    ],
    ['--prefetch on migrate', ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--prefetch', 'background'], /--dest-prefetch/],
    [
      'a bad --dest-prefetch',
      ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--dest-prefetch', 'soon'],
      /bad dest prefetch 'soon'/,
    ],
    ['--max-rounds 0', ['bench', '--strategy', 'uffd', '--scenario', 'migrate', '--source', 'remote', '--max-rounds', '0'], /max rounds 0/],
    ['write fraction out of range', ['bench', '--strategy', 'mprotect', '--scenario', 'write-track', '--write-fraction', '1.5'], /write fraction 1.5/],
  ];
  for (const [what, args, msg] of cases)
    it(what, () => {
      const r = faultlab(args);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(msg);
    });
});

describe('the push matrix', () => {
  it('parses, and every tracker x pattern x rtt cell has its own id', () => {
    const m = loadMatrix('push');
    const wt = m.cells.filter((c) => c.group === 'write-track-vs-rtt');
    expect(wt.length).toBe(4 * 3 * 2);
    expect(new Set(wt.map((c) => c.id)).size).toBe(wt.length);
    expect(
      m.cells
        .filter((c) => c.params.scenario === 'migrate')
        .map((c) => `${c.params.strategy}@${c.params.rttMs}`)
        .sort(),
    ).toEqual(['sigsegv@0', 'sigsegv@2', 'sigsegv@5', 'uffd@0', 'uffd@2', 'uffd@5']);
  });

  it('the migrate matrix: every mode x pull strategy x RTT, each its own id; write-track ids do not hash the migrate part', () => {
    const m = loadMatrix('migrate');
    expect(m.cells.length).toBe(3 * 2 * 5);
    expect(new Set(m.cells.map((c) => c.id)).size).toBe(m.cells.length);
    expect(new Set(m.cells.map((c) => c.params.migrateMode))).toEqual(new Set(['precopy', 'postcopy', 'hybrid']));
    expect([...new Set(m.cells.map((c) => c.params.rttMs))].sort((a, b) => a - b)).toEqual([0, 2, 5, 10, 25]);
  });

  it('write-track ids are as before the migrate part; migrate ids hash it (their measurement changed)', () => {
    const old = (c: MatrixCell) => {
      const p = c.params;
      const head = [c.kind, p.strategy, p.scenario, p.source, p.rttMs, p.regionBytes, p.chunkBytes, p.cpus, p.handlerThreads, p.seed, p.repeat, c.count ?? ''];
      return createHash('sha256')
        .update([...head, p.pattern, p.writeFraction, p.intervals, p.tracker].join('/'))
        .digest('hex')
        .slice(0, 12);
    };
    const cells = loadMatrix('push').cells;
    const wt = cells.filter((c) => c.params.scenario === 'write-track');
    expect(wt.length).toBeGreaterThan(0);
    for (const c of wt) expect(c.id).toBe(old(c));
    for (const c of cells.filter((x) => x.params.scenario === 'migrate')) expect(c.id).not.toBe(old(c));
  });
});
