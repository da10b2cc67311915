// Side-by-side benchmarks: the strategies against the floors, interleaved in one
// run (round by round, so drift on a shared VM hits both sides alike), reported
// as medians with spread and as ratios computed within each round.
import { floorsNative, streamFloorNative, tcpFloorNative, transportNative } from './native.js';
import { hostileReaderGrowthMiB, idleConnectionsAnswerSeconds, terabyteRegionPeakMiB } from './server-memory.js';
import { runCell } from './bench.js';
import { DEFAULTS, type CellParams } from './cell.js';
import { readFileSync } from 'node:fs';
import { stringify } from 'csv-stringify/sync';
import { NbdServer, rttUs } from './server/nbd-server.js';

export interface Series {
  name: string;
  values: number[];
  /** Why this measure did not run (then values is empty). */
  skipped?: string;
  /** The issue's target for this measure, judged at the median; `spans`: the
   * middle half of the rounds (q1..q3) lies on both sides of it, so another
   * run on this noisy VM may well judge it the other way. */
  target?: { op: '<=' | '>='; value: number; met: boolean; spans: boolean };
}

/** The issues' targets, by measure name: issue 2 (floors), 3 and 18 (remote), 6 (prefetch), 19 (handler, resident). */
const TARGETS: [RegExp, '<=' | '>=', number][] = [
  [/^(uffd|sigsegv) \/ floor$/, '<=', 1.1],
  [/^(uffd|sigsegv) 4 KiB \/ \(C TCP \+ C handler\)$/, '<=', 1.25],
  [/^\S+ 1 MiB \/ transport 1 MiB$/, '>=', 0.7],
  [/^\S+ 1 MiB ahead:2 \/ transport 1 MiB$/, '>=', 0.8],
  [/^server growth, unread 100 x 16 MiB READs @\d+ms \(MiB\)$/, '<=', 128],
  [/^server peak resident, 1 TiB region \(MiB\)$/, '<=', 256],
  [/^nbdinfo answered with 1100 idle connections open \(1 = yes\)$/, '>=', 1],
  [/ (ahead:\d+|adaptive|background) @10ms \(MiB\/s\)$/, '>=', 1000],
  [/ (ahead:\d+|adaptive|background) @25ms \(MiB\/s\)$/, '>=', 500],
  [/ none 4 KiB local p50 \/ floor$/, '<=', 1.1],
  [/^handler process \/ thread, cpus same$/, '<=', 1.3],
  [/^(uffd|sigsegv) limited \/ no limit, set-up included$/, '>=', 0.8],
  [/^(uffd|sigsegv) peak RSS - limit \(MiB\)$/, '<=', 700],
  [/^(uffd|sigsegv) max_resident_bytes \/ limit$/, '<=', 1],
  [/^migrate (uffd|sigsegv) @5ms total \(s\)$/, '<=', 3],
  [/^migrate (uffd|sigsegv) @5ms downtime \(ms\)$/, '<=', 100],
  [/^migrate (uffd|sigsegv) @25ms downtime \/ RTT$/, '<=', 10],
];

/** Each series with the target it answers to, judged at its median. */
export function judge(series: Series[]): Series[] {
  return series.map((r) => {
    const t = TARGETS.find(([re]) => re.test(r.name));
    if (!t || !r.values.length) return r;
    const { median, q1, q3 } = stats(r.values);
    return { ...r, target: { op: t[1], value: t[2], met: t[1] === '<=' ? median <= t[2] : median >= t[2], spans: q1 < t[2] && t[2] < q3 } };
  });
}

export function stats(xs: number[]): { median: number; min: number; max: number; q1: number; q3: number } {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.round(p * (s.length - 1)))];
  return { median: q(0.5), min: s[0], max: s[s.length - 1], q1: q(0.25), q3: q(0.75) };
}

export function formatSeries(rows: Series[], unit: string, digits = 2): string {
  const w = Math.max(...rows.map((r) => r.name.length), 8);
  const lines = [
    `${'measure'.padEnd(w)}  ${'median'.padStart(10)}  ${'q1..q3'.padStart(21)}  ${'min..max'.padStart(21)}  target (${unit}, n=${rows[0]?.values.length ?? 0})`,
  ];
  for (const r of rows) {
    if (!r.values.length) {
      lines.push(`${r.name.padEnd(w)}  skipped: ${r.skipped ?? 'no values'}`);
      continue;
    }
    const s = stats(r.values);
    const f = (x: number) => x.toFixed(digits);
    const t = r.target
      ? `${r.target.op === '<=' ? '≤' : '≥'} ${r.target.value}: ${r.target.met ? 'met' : 'MISSED'}${r.target.spans ? ' (q1..q3 spans it)' : ''}`
      : '';
    lines.push(
      `${r.name.padEnd(w)}  ${f(s.median).padStart(10)}  ${`${f(s.q1)}..${f(s.q3)}`.padStart(21)}  ${`${f(s.min)}..${f(s.max)}`.padStart(21)}  ${t}`.trimEnd(),
    );
  }
  const judged = rows.filter((r) => r.target);
  if (judged.length) {
    const missed = judged.filter((r) => !r.target!.met).map((r) => r.name);
    const spans = judged.filter((r) => r.target!.spans).length;
    lines.push(
      '',
      `targets at the median: ${judged.length - missed.length} of ${judged.length} met${missed.length ? `; missed: ${missed.join('; ')}` : ''}${spans ? ` (${spans} with q1..q3 spanning the target)` : ''}`,
    );
  }
  return lines.join('\n');
}

const FLOOR_PAGES = 16384; // 64 MiB of 4 KiB pages, as the strategies read

/** The floor a strategy is held to (native/src/diag/floors.c): sigsegv's is the
 * floor that pre-populates its memfd and page tables before the timed loop, as
 * the strategy's set-up does; the plain sigsegv floor allocates inside it, a
 * step the strategy does not take, so the strategy measured below it. */
const FLOOR_OF = { uffd: 'uffd', sigsegv: 'sigsegv_prepopulated' } as const;

/** Issue 2's target: per-fault cost of uffd and sigsegv (read-seq, 64 MiB, 4 KiB,
 * local source, cpus=same) against the minimal single-purpose C handlers. */
export async function floorsBenchmark(rounds: number, log: (s: string) => void): Promise<Series[]> {
  const s: Record<string, number[]> = { uffd: [], 'floor uffd': [], 'uffd / floor': [], sigsegv: [], 'floor sigsegv': [], 'sigsegv / floor': [] };
  for (let i = 0; i < rounds; i++) {
    const floors = (await floorsNative(`pages=${FLOOR_PAGES} cpus=same`)).floors as Record<string, { p50_ns: number }>;
    for (const strategy of ['uffd', 'sigsegv'] as const) {
      const r = await runCell({ ...DEFAULTS, strategy, scenario: 'read-seq', regionBytes: FLOOR_PAGES * 4096, chunkBytes: 4096, cpus: 'same' });
      if (r.summary.verified !== true) throw new Error(`${strategy} did not verify`);
      const us = Number(r.summary.fault_ns_p50) / 1000;
      const floor = floors[FLOOR_OF[strategy]].p50_ns / 1000;
      s[strategy].push(us);
      s[`floor ${strategy}`].push(floor);
      s[`${strategy} / floor`].push(us / floor);
    }
    log(
      `round ${i + 1}/${rounds}: uffd ${s.uffd.at(-1)!.toFixed(2)} us (floor ${s['floor uffd'].at(-1)!.toFixed(2)}), sigsegv ${s.sigsegv.at(-1)!.toFixed(2)} us (floor ${s['floor sigsegv'].at(-1)!.toFixed(2)})`,
    );
  }
  return Object.entries(s).map(([name, values]) => ({ name, values }));
}

/** uffd installs with UFFDIO_COPY (a second copy of every byte, pages allocated
 * per fault); as uffd-continue, maps a memfd's pages with UFFDIO_CONTINUE; as
 * uffd-move, moves the pages of a mirror populated at setup with UFFDIO_MOVE. */
const VARIANTS: [string, Pick<CellParams, 'strategy' | 'uffdInstall'>][] = [
  ['uffd', { strategy: 'uffd' }],
  ['uffd-continue', { strategy: 'uffd', uffdInstall: 'continue' }],
  ['uffd-move', { strategy: 'uffd', uffdInstall: 'move' }],
  ['sigsegv', { strategy: 'sigsegv' }],
];

/** The CPUs this process may run on, in order (its affinity, as the native
 * side's cpus=same|split reads it: the first for the client side, the second
 * for the handler side). */
export function allowedCpus(status = readFileSync('/proc/self/status', 'utf8')): number[] {
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1] ?? '';
  return list.split(',').flatMap((part) => {
    const [a, b = a] = part.split('-').map(Number);
    return Number.isInteger(a) && Number.isInteger(b) ? Array.from({ length: b - a + 1 }, (_, i) => a + i) : [];
  });
}

/** Issues 3 and 18's targets over loopback at RTT 0, against floors taken in the
 * same round: a 4 KiB remote fault vs (the C TCP 4 KiB request/response floor +
 * the minimal C handler floor), no NBD and no faultlab code in either; beside
 * it the composed floor (the minimal handler fetching each page over the C TCP
 * pair: floors fetch=tcp), which splits the fault's excess over the sum into
 * what composing costs on this machine and what faultlab adds; 1 MiB
 * chunks (uffd also with UFFDIO_CONTINUE and UFFDIO_MOVE, each also with
 * prefetch ahead:2) vs a C client's raw 1 MiB READs from the same NBD server
 * (fl_transport), and UFFDIO_COPY with ahead:2 also vs a pull into
 * UFFDIO_COPY in minimal C with 2 requests in flight, with no window and with
 * a sliding window of 2 (fl_stream_floor: no NBD, no strategy); then the NBD
 * server's memory, each in its own `faultlab serve` process. Lines without a
 * target decompose the result.
 *
 * The 1 MiB measures read `streamBytes` (default 1 GiB): a sequential
 * throughput is a steady state, and over a 64 MiB region (64 chunks, tens of
 * ms) the first, unpipelined fault and the pipeline's ramp weigh in as much
 * as the streaming does. */
export async function remoteBenchmark(rounds: number, regionBytes: number, streamBytes: number, log: (s: string) => void): Promise<Series[]> {
  const s: Record<string, number[]> = {};
  const skipped: Record<string, string> = {};
  const push = (k: string, v: number) => (s[k] ??= []).push(v);
  // Both servers (the NBD server and the C TCP floor's) on the CPU the client
  // side does not use: each round trip then crosses CPUs exactly twice in the
  // floor and in the fault path alike. Left unpinned, the scheduler puts a
  // server beside its client or not, run by run, and on a VM whose idle vCPUs
  // halt the two placements differ several-fold (doctor's wake_floors).
  const serverCpu = allowedCpus()[1]; // where cpus=split puts the handler side: not the client's CPU
  // One export serves both sizes (a run may read the start of a larger one).
  const server = NbdServer.start({ regionBytes: Math.max(regionBytes, streamBytes), seed: 1, cpu: serverCpu });
  const pinServer = serverCpu === undefined ? '' : ` server_cpu=${serverCpu}`; // the C floors' servers, where the NBD server runs
  try {
    const streamRequests = Math.max(16, streamBytes >> 20); // 1 MiB each
    const tspec = (chunk: number, n: number, region = regionBytes) =>
      `source=tcp host=${server.host} port=${server.port} region=${region} seed=1 chunk=${chunk} cpus=same requests=${n}`;
    // Each reference is measured right before the remote run it is compared
    // with, so a ratio compares two measurements a few ms apart (a VM's speed
    // drifts within a round).
    const tcp = async (bytes: number, n: number) => {
      const r = await tcpFloorNative(`bytes=${bytes} requests=${n} cpus=same${pinServer}`);
      if (r.verified !== true) throw new Error(`the C TCP floor's ${bytes}-byte replies did not verify`);
      return r;
    };
    const composedFloorUs = async (name: string) => {
      const f = (await floorsNative(`pages=${FLOOR_PAGES} cpus=same fetch=tcp only=${name}${pinServer}`)).floors as Record<
        string,
        { p50_ns?: number; verified?: boolean; error?: string }
      >;
      if (f[name].verified !== true) throw new Error(`the C composed floor ${name} failed: ${f[name].error ?? 'did not verify'}`);
      return f[name].p50_ns! / 1000;
    };
    const streamFloor = async (ahead: number, window: number) => {
      const r = await streamFloorNative(`region=${streamBytes} chunk=${1 << 20} ahead=${ahead} window=${window} cpus=same${pinServer}`);
      if (r.verified !== true) throw new Error(`the C stream (${ahead} in flight, window ${window}) did not verify`);
      return { mibps: Number(r.throughput_mibps), cpuNs: Number(r.cpu_ns) };
    };
    const transport4KiB = async () => Number((await transportNative(tspec(4096, 4000))).p50_ns) / 1000;
    // The raw client's throughput, and the share of its time inside the reads it spent on the CPU.
    const transport1MiB = async (land: 'buffer' | 'region') => {
      const r = await transportNative(`${tspec(1 << 20, streamRequests, streamBytes)} land=${land}`);
      return { mibps: Number(r.throughput_mibps), cpuShare: Number(r.cpu_ns) / (Number(r.n) * Number(r.mean_ns)) };
    };
    for (let i = 0; i < rounds; i++) {
      const floors = (await floorsNative(`pages=${FLOOR_PAGES} cpus=same`)).floors as Record<string, { p50_ns: number }>;
      for (const [name, variant] of VARIANTS) {
        const base = { ...DEFAULTS, ...variant, scenario: 'read-seq' as const, regionBytes, cpus: 'same' as const };
        const remote = `${server.host}:${server.port}`;
        if (!variant.uffdInstall) {
          const handler = floors[name].p50_ns / 1000;
          push(`C handler floor ${name} p50 (us)`, handler);
          const local = Number((await runCell({ ...base, chunkBytes: 4096 })).summary.fault_ns_p50) / 1000;
          const t4k = await transport4KiB();
          push('NBD transport 4 KiB p50 (us)', t4k);
          const composed = await composedFloorUs(name);
          push(`C composed floor ${name} p50 (us)`, composed);
          const c4k = Number((await tcp(4096, 4000)).p50_ns) / 1000;
          push('C TCP 4 KiB p50 (us)', c4k);
          push('NBD transport 4 KiB / C TCP 4 KiB', t4k / c4k);
          push(`C composed floor ${name} / (C TCP + C handler)`, composed / (c4k + handler));
          const small = await runCell({ ...base, chunkBytes: 4096, source: 'remote', remote });
          if (small.summary.verified !== true) throw new Error(`${name} did not verify`);
          const r4k = Number(small.summary.fault_ns_p50) / 1000;
          push(`${name} 4 KiB remote p50 (us)`, r4k);
          push(`${name} 4 KiB / (C TCP + C handler)`, r4k / (c4k + handler));
          push(`${name} 4 KiB / (NBD transport + local)`, r4k / (t4k + local));
          push(`${name} 4 KiB / C composed floor`, r4k / composed);
        }
        // 1 MiB: the fault path alone, then with the next chunks requested while
        // the application copies this one (ahead:2), each against the transport.
        for (const prefetch of ['none', 'ahead:2']) {
          const transport = await transport1MiB('buffer');
          const t1m = transport.mibps;
          push('transport 1 MiB (MiB/s)', t1m);
          push('transport 1 MiB client CPU busy (share of its time)', transport.cpuShare);
          // The decomposition: the same requests landing in a region-sized
          // mapping, cache-cold as a fault's fetch lands (not the target's yardstick);
          // and what TCP alone moves in 1 MiB round trips.
          const t1mRegion = prefetch === 'none' ? (await transport1MiB('region')).mibps : 0;
          if (t1mRegion) push('transport 1 MiB landing in a region (MiB/s)', t1mRegion);
          if (prefetch === 'none' && name === 'uffd') {
            const c1m = Number((await tcp(1 << 20, streamRequests)).throughput_mibps);
            push('C TCP 1 MiB (MiB/s)', c1m);
            push('transport 1 MiB / C TCP 1 MiB', t1m / c1m);
          }
          const big = await runCell({ ...base, regionBytes: streamBytes, chunkBytes: 1 << 20, source: 'remote', remote, prefetch });
          if (big.summary.verified !== true) throw new Error(`${name} prefetch=${prefetch} did not verify`);
          const tag = prefetch === 'none' ? '' : ` ${prefetch}`;
          const mibps = Number(big.summary.throughput_mibps);
          push(`${name} 1 MiB chunks${tag} (MiB/s)`, mibps);
          push(`${name} 1 MiB${tag} / transport 1 MiB`, mibps / t1m);
          const cpuNs = Number(big.summary.client_cpu_ns);
          if (prefetch !== 'none') {
            // Where the client's one CPU (cpus=same) stops it: how busy that CPU
            // was, and the throughput its CPU time per MiB alone would allow,
            // were it never idle, against the transport.
            if (!(cpuNs > 0)) throw new Error(`${name} prefetch=${prefetch}: no client CPU time in the row (a clock could not be read)`);
            push(`${name} 1 MiB${tag} client CPU busy (share of wall)`, cpuNs / Number(big.summary.wall_ns));
            push(`${name} 1 MiB${tag} client-CPU bound / transport 1 MiB`, streamBytes / (1 << 20) / (cpuNs / 1e9) / t1m);
          }
          // The same work in minimal C (fl_stream_floor), as many requests in
          // flight: with no window (how far a pull into UFFDIO_COPY gets here
          // when nothing holds it back), then held to a sliding window as
          // deep (what a window costs, with no engine around it). Measured
          // after the run, not before it: a 1 GiB stream of its own right
          // before slowed the run that followed.
          if (name === 'uffd' && prefetch !== 'none') {
            const depth = Number(prefetch.split(':')[1]);
            for (const window of [0, depth]) {
              const label = `C stream, ${depth} in flight${window ? `, window ${window}` : ''}`;
              const stream = await streamFloor(depth, window);
              push(`${label} (MiB/s)`, stream.mibps);
              push(`${label} / transport 1 MiB`, stream.mibps / t1m);
              push(`${name} 1 MiB${tag} / ${label}`, mibps / stream.mibps);
              // The client's CPU per MiB against the minimal pull's, both over
              // the same bytes: what faultlab's code adds to the work the one
              // CPU has to do, whatever the server's speed.
              push(`${name} 1 MiB${tag} client CPU per MiB / ${label}'s`, cpuNs / stream.cpuNs);
            }
          }
          if (!t1mRegion) continue;
          push(`${name} 1 MiB / transport landing in a region`, mibps / t1mRegion);
          if (name === 'uffd') {
            // UFFDIO_COPY's ceiling: the transport followed by the install alone
            // (install_ns_p50), with no fault, wake-up or application copy.
            const transportNs = 1e9 / t1m;
            push('uffd (UFFDIO_COPY) ceiling: transport / (transport + install)', transportNs / (transportNs + Number(big.summary.install_ns_p50)));
          }
        }
      }
      // The server's memory, each measure in a fresh `faultlab serve` process.
      for (const rttMs of [0, 1]) push(`server growth, unread 100 x 16 MiB READs @${rttMs}ms (MiB)`, await hostileReaderGrowthMiB(rttMs));
      push('server peak resident, 1 TiB region (MiB)', await terabyteRegionPeakMiB());
      const idle = await idleConnectionsAnswerSeconds();
      if ('skipped' in idle) skipped['nbdinfo answered with 1100 idle connections open (1 = yes)'] = idle.skipped;
      else {
        push('nbdinfo answered with 1100 idle connections open (1 = yes)', idle.seconds === null ? 0 : 1);
        if (idle.seconds !== null) push('nbdinfo answer with 1100 idle connections open (s)', idle.seconds);
      }
      log(
        `round ${i + 1}/${rounds}: ${['uffd', 'sigsegv'].map((n) => `${n} 4 KiB ${s[`${n} 4 KiB / (C TCP + C handler)`].at(-1)!.toFixed(2)}x floors`).join(', ')}, ` +
          `uffd 1 MiB ahead:2 ${s['uffd 1 MiB ahead:2 / transport 1 MiB'].at(-1)!.toFixed(2)} of the transport`,
      );
    }
  } finally {
    await server.close();
  }
  return [
    ...Object.entries(s).map(([name, values]) => ({ name, values })),
    ...Object.entries(skipped).map(([name, why]) => ({ name, values: [], skipped: why })),
  ];
}

export const PREFETCH_POLICIES = ['none', 'ahead:64', 'adaptive', 'background', 'criu'] as const;

/** Issue 6's targets: sequential read of a region (256 MiB) over loopback at
 * emulated RTT 10 and 25 ms, 1 MiB chunks, every prefetch policy side by side
 * (depth 64, cpus free), uffd and sigsegv; and at RTT 0 with 4 KiB chunks the
 * per-fault cost with prefetch=none against the floors. One server per RTT,
 * policies interleaved within each round. */
export async function prefetchBenchmark(
  rounds: number,
  regionBytes: number,
  log: (s: string) => void,
  opts: { rtts?: number[]; policies?: readonly string[]; depth?: number } = {},
): Promise<Series[]> {
  const s: Record<string, number[]> = {};
  const push = (k: string, v: number) => (s[k] ??= []).push(v);
  const rtts = opts.rtts ?? [10, 25];
  const policies = opts.policies ?? PREFETCH_POLICIES;
  const servers = rtts.map((rttMs) => NbdServer.start({ regionBytes, seed: 1, rttUs: rttUs(rttMs) }));
  try {
    for (let i = 0; i < rounds; i++) {
      for (const [k, rttMs] of rtts.entries()) {
        const remote = `${servers[k].host}:${servers[k].port}`;
        for (const [name, variant] of VARIANTS)
          for (const prefetch of policies) {
            const r = await runCell({
              ...DEFAULTS,
              ...variant,
              scenario: 'read-seq',
              source: 'remote',
              remote,
              rttMs,
              regionBytes,
              chunkBytes: 1 << 20,
              cpus: 'free',
              prefetch,
              depth: opts.depth ?? 64,
              fetchTimeoutMs: 30_000,
            });
            if (r.summary.verified !== true) throw new Error(`${name} prefetch=${prefetch} at ${rttMs} ms did not verify`);
            push(`${name} ${prefetch} @${rttMs}ms (MiB/s)`, Number(r.summary.throughput_mibps));
          }
      }
      // The fault path must not have paid for prefetch: 4 KiB, no prefetch, local, against the floors.
      const floors = (await floorsNative(`pages=${FLOOR_PAGES} cpus=same`)).floors as Record<string, { p50_ns: number }>;
      for (const strategy of ['uffd', 'sigsegv'] as const) {
        const r = await runCell({
          ...DEFAULTS,
          strategy,
          scenario: 'read-seq',
          regionBytes: FLOOR_PAGES * 4096,
          chunkBytes: 4096,
          cpus: 'same',
          prefetch: 'none',
        });
        if (r.summary.verified !== true) throw new Error(`${strategy} did not verify`);
        push(`${strategy} none 4 KiB local p50 / floor`, Number(r.summary.fault_ns_p50) / floors[FLOOR_OF[strategy]].p50_ns);
      }
      log(
        `round ${i + 1}/${rounds}: ${Object.entries(s)
          .map(([k, v]) => `${k.replace(' (MiB/s)', '')} ${v.at(-1)!.toFixed(k.includes('/') ? 2 : 0)}`)
          .join(', ')}`,
      );
    }
  } finally {
    for (const x of servers) x.stop();
  }
  return Object.entries(s).map(([name, values]) => ({ name, values }));
}

/** `targets --out FILE`: one CSV row per measure, its rounds' values (`;`
 * separated, in round order), their median and spread, the target and the
 * verdict, and the command and commit that produced it (docs quote these files). */
export function seriesCsv(rows: Series[], meta: { command: string; commit: string; date: string }): string {
  const header = ['measure', 'n', 'median', 'q1', 'q3', 'min', 'max', 'target_op', 'target', 'met', 'spans', 'skipped', 'values', 'command', 'commit', 'date'];
  const lines = rows.map((r) => {
    const st = r.values.length ? stats(r.values) : null;
    const num = (x: number | undefined) => (x === undefined ? '' : String(Number(x.toPrecision(6))));
    return [
      r.name,
      String(r.values.length),
      num(st?.median),
      num(st?.q1),
      num(st?.q3),
      num(st?.min),
      num(st?.max),
      r.target?.op ?? '',
      num(r.target?.value),
      r.target ? String(r.target.met) : '',
      r.target ? String(r.target.spans) : '',
      r.skipped ?? '',
      r.values.map(num).join(';'),
      meta.command,
      meta.commit,
      meta.date,
    ];
  });
  return stringify([header, ...lines]);
}

/** Issue 19's target: uffd's per-fault cost (read-seq, 4 KiB chunks, local
 * source, RTT 0) with the handler in a process of its own against handler
 * threads, at --cpus same (the target), split and free (reported). Thread and
 * process alternate within each round, their order swapped every round. */
export async function handlerBenchmark(rounds: number, regionBytes: number, log: (s: string) => void): Promise<Series[]> {
  const s: Record<string, number[]> = {};
  const push = (k: string, v: number) => (s[k] ??= []).push(v);
  for (let i = 0; i < rounds; i++) {
    for (const cpus of ['same', 'split', 'free'] as const) {
      const p50: Record<string, number> = {};
      for (const handler of i % 2 ? (['process', 'thread'] as const) : (['thread', 'process'] as const)) {
        const r = await runCell({ ...DEFAULTS, strategy: 'uffd', scenario: 'read-seq', regionBytes, chunkBytes: 4096, cpus, handler });
        if (r.summary.verified !== true) throw new Error(`uffd handler=${handler} cpus=${cpus} did not verify`);
        p50[handler] = Number(r.summary.fault_ns_p50) / 1000;
      }
      push(`handler thread, cpus ${cpus} p50 (us)`, p50.thread);
      push(`handler process, cpus ${cpus} p50 (us)`, p50.process);
      push(`handler process / thread, cpus ${cpus}`, p50.process / p50.thread);
    }
    log(`round ${i + 1}/${rounds}: ${['same', 'split', 'free'].map((c) => `${c} ${s[`handler process / thread, cpus ${c}`].at(-1)!.toFixed(2)}x`).join(', ')}`);
  }
  return Object.entries(s).map(([name, values]) => ({ name, values }));
}

/** Issue 20's targets: migrate 64 MiB with the default writer (hot, 1% of the
 * chunks every 10 ms) at 5 and 25 ms RTT (server delay), uffd and sigsegv
 * destinations pulling with prefetch=background: total and downtime, and
 * downtime in measured round trips. Each run's log line says what bounds
 * them: the push bandwidth and dirty rate measured by the source, the RTT it
 * measured, the stop rule's verdict, and downtime's parts (final push, then
 * the destination's resume: relay and first access). */
export async function migrateBenchmark(rounds: number, regionBytes: number, log: (s: string) => void): Promise<Series[]> {
  const s: Record<string, number[]> = {};
  const push = (k: string, v: number) => (s[k] ??= []).push(v);
  const ms = (ns: unknown) => Number(ns) / 1e6;
  const mibps = (bps: unknown) => Number(bps) / (1 << 20);
  for (let i = 0; i < rounds; i++) {
    for (const rttMs of [5, 25])
      for (const strategy of ['uffd', 'sigsegv'] as const) {
        const r = await runCell({ ...DEFAULTS, strategy, scenario: 'migrate', source: 'remote', rttMs, regionBytes, chunkBytes: 4096 });
        const x = r.summary;
        if (x.verified !== true) throw new Error(`migrate ${strategy} at ${rttMs} ms did not verify`);
        const tag = `migrate ${strategy} @${rttMs}ms`;
        const rtt = ms(x.push_rtt_ns);
        push(`${tag} total (s)`, ms(x.migration_ns) / 1000);
        push(`${tag} downtime (ms)`, ms(x.downtime_ns));
        push(`${tag} downtime / RTT`, ms(x.downtime_ns) / rtt);
        push(`${tag} push bandwidth (MiB/s)`, mibps(x.push_bytes_per_s));
        push(`${tag} dirty rate (MiB/s)`, mibps(x.dirty_bytes_per_s));
        log(
          `round ${i + 1}/${rounds} ${tag}: total ${ms(x.migration_ns).toFixed(0)} ms = pre-copy ${ms(x.precopy_ns).toFixed(0)} ms ` +
            `(${x.precopy_rounds} rounds, dirty chunks ${x.round_dirty_chunks}, push ms ${String(x.round_push_ns)
              .split(';')
              .map((v) => ms(v).toFixed(1))
              .join(';')}, ${x.stop_reason}) + downtime ${ms(x.downtime_ns).toFixed(1)} ms ` +
            `(final push of ${x.final_dirty_chunks} chunks ${ms(x.final_push_ns).toFixed(1)} ms, resume ${ms(x.resume_ns).toFixed(1)} ms: ` +
            `relay ${ms(x.relay_ns).toFixed(1)} ms, first access ${ms(x.first_access_ns).toFixed(1)} ms) + pull ${ms(x.pull_ns).toFixed(0)} ms ` +
            `(${x.network_faults} faults waited on the network); bounded by RTT ${rtt.toFixed(2)} ms, push bandwidth ` +
            `${mibps(x.push_bytes_per_s).toFixed(0)} MiB/s, dirty rate ${mibps(x.dirty_bytes_per_s).toFixed(0)} MiB/s`,
        );
      }
  }
  return Object.entries(s).map(([name, values]) => ({ name, values }));
}
