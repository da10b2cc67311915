/*
 * faultlab: the C helper's public API.
 *
 * One region = one memory area served by one strategy from one source.
 * Everything is configured with short "key=value" specs (space separated) so the
 * TypeScript side (koffi) and the C tests pass the same strings, and results come
 * back as one JSON object, which keeps the ABI small and lets columns grow.
 *
 * Region spec keys (defaults in brackets):
 *   strategy=uffd|sigsegv|memory|disk|eager   [uffd]
 *   source=local|tcp                          [local]
 *   host=127.0.0.1 port=N                     (source=tcp) an NBD server (docs/protocol.md)
 *   export=NAME                               [""] (source=tcp) the NBD export ("" = the server's default)
 *   region=BYTES  chunk=BYTES                 [64MiB, 4096]; chunk a page multiple
 *   seed=N                                    [1] contents = fl_fill(seed, offset)
 *   handler_threads=N                         [1] (uffd)
 *   handler=thread|process                    [thread] (uffd) handler threads in this process, or a
 *                                             handler process (faultlab-handler, beside the library)
 *                                             that gets the uffd over a Unix socket
 *   cpus=same|split|free                      [same] workload vs handler placement
 *   fetch_timeout_ms=N                        [5000]
 *   client_rtt_us=N                           [0] (source=tcp) emulated RTT held by the client:
 *                                             each answer is due at send + RTT + its transfer
 *                                             time (sources/tcp.c); for a server answering at once
 *   corrupt=OFFSET                            (source=local) flip one byte at the source
 *   disk_dir=PATH                             [/tmp] (strategy=disk)
 *
 * Run spec keys:
 *   workload=first-chunk|read-seq|read-random [read-seq]
 *   seed=N                                    [1] order of read-random
 *
 * Every function that can fail returns 0 on success, -1 on failure with a one-line
 * message in the caller's buffer (never longer than its length, always NUL-ended).
 */
#ifndef FAULTLAB_H
#define FAULTLAB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fl_region fl_region;

/* Create a region. On failure returns NULL and writes the reason to err. */
fl_region *fl_region_create(const char *spec, char *err, size_t errlen);

/* Run one workload on the region (a region can run once: faults are first-touch).
 * Writes a JSON object with the statistics to out (see README "Result keys").
 * Returns 0 when the workload ran (even if verification failed: see "verified"),
 * -1 when it could not run or was aborted (fetch error, timeout), message in out. */
int fl_run(fl_region *r, const char *run_spec, char *out, size_t outlen);

/* While fl_run runs (from any thread): the accesses done so far; *planned gets
 * how many the workload makes (0 before fl_run has started it). */
uint64_t fl_region_progress(fl_region *r, uint64_t *planned);

/* Unmap, stop handler threads, close fds. NULL is allowed. */
void fl_region_destroy(fl_region *r);

/* Fill buf with the deterministic contents of [offset, offset+len) for seed.
 * offset and len must be multiples of 8. Used by the chunk server and the sources. */
void fl_fill(void *buf, uint64_t len, uint64_t seed, uint64_t offset);

/* Count 8-byte words of buf that differ from fl_fill(seed, offset); the offset of
 * the first mismatch goes to *first_bad (UINT64_MAX if none). */
uint64_t fl_verify(const void *buf, uint64_t len, uint64_t seed, uint64_t offset, uint64_t *first_bad);

/* Kernel and userfaultfd capabilities as JSON (see `faultlab doctor`). */
int fl_doctor(char *out, size_t outlen);

/* Mechanism floors as JSON: spec keys pages=N cpus=same|split|free
 * fetch=local|tcp [local] server_cpu=N [unpinned; fetch=tcp only] only=NAME
 * [all: that floor alone, the others not in the JSON]. fetch=tcp runs the
 * handler floors only, each fetching every page over the C TCP floor pair
 * (fl_tcp_floor's server). */
int fl_floors(const char *spec, char *out, size_t outlen);

/* Transport floor as JSON: `requests` READs of `chunk` bytes over the tcp source
 * alone (no faults), in order over the region, each timed; bytes verified.
 * Spec: the region keys host, port, region, seed, chunk, cpus, fetch_timeout_ms,
 * plus export, requests=N and op=read|ping [read]; op=ping times empty round
 * trips instead (NBD_CMD_FLUSH, the RTT probe: p50/p5/p95/min/max_ns as the
 * tcp source sees them);
 * with trace=1 (op=ping, at most 4096 requests) also sent_ns and received_ns,
 * each round trip's CLOCK_MONOTONIC send and receive times. op=read's JSON:
 * chunk_bytes, land, n, p50/p99/max_ns, mean_ns, throughput_mibps, cpu_ns (the
 * client thread's CPU time inside its reads), verified. */
int fl_transport(const char *spec, char *out, size_t outlen);

/* The network floor, no NBD in it: a minimal C TCP client and server on loopback
 * (threads of this process). Per request the client sends a 28-byte header and
 * the server answers with `bytes` bytes; each round trip is timed. Spec keys
 * bytes=N [4096] (multiple of 8, at most 64 MiB), requests=N [1000],
 * cpus=same|split|free [same] (the client thread's placement, as the tcp
 * source's), server_cpu=N [unpinned] (the server thread's, as the NBD
 * server's cpu=). JSON: bytes,
 * n, p50/p5/p95/min/max_ns, mean_ns, throughput_mibps, verified. */
int fl_tcp_floor(const char *spec, char *out, size_t outlen);

/* The streaming floor, no NBD and no faultlab strategy in it: a region under
 * a minimal userfaultfd (MISSING) that one handler thread fills in order from
 * fl_tcp_floor's server, keeping `ahead` chunk requests in flight and
 * installing each reply with UFFDIO_COPY, while the application thread reads
 * the region in order as the workloads do (a timed memcpy per chunk, then an
 * untimed verify). Spec keys region=N [256 MiB] (a multiple of chunk),
 * chunk=N [1 MiB] (a multiple of the page size, at most 64 MiB), ahead=N [2]
 * (1..16), window=N [0: none] (0..16: no request for a chunk more than N past
 * the one the application reads), span=N [1] (1..64: the server answers chunk
 * i with the (i % N)th of N prefilled chunks; 1 keeps its one reply hot in the
 * cache, as the C TCP floor's; more lets a misplaced chunk fail verification),
 * cpus=same|split|free [same],
 * server_cpu=N [unpinned]. JSON: region, chunk, ahead, window, max_lead (the
 * most chunks a request went out ahead of the application), cpus,
 * throughput_mibps (bytes over the timed accesses, as the workloads'),
 * install_ns_p50, verified, uffd_path. */
int fl_stream_floor(const char *spec, char *out, size_t outlen);

/* Push: the write-track scenario as JSON (docs/columns.md lists the keys).
 * Spec: the region keys source, host, port, export, region, chunk, seed, cpus,
 * fetch_timeout_ms, plus
 *   tracker=uffd-wp|uffd-wp-async|mprotect|soft-dirty|none   [uffd-wp]
 *   pattern=seq|random|hot        [random]  which chunks each interval writes
 *   write_fraction=F              [0.05]    writes per interval = F * chunks (0 < F <= 1)
 *   write_bytes=N                 [4096]    bytes per write (multiple of 8, <= chunk)
 *   intervals=N                   [4]       write, collect, push; the last push is the final sync
 *   inject_untracked=1            (tests)   one write through a second mapping the tracker cannot see
 * Intervals are counted in writes, not in time, so every tracker sees exactly
 * the same writes (a time-based interval would let a slow tracker write less).
 * Returns 0 when it ran (see "verified"), -1 with a message otherwise. */
int fl_write_track(const char *spec, char *out, size_t outlen);

/* Migrate, source half (its own process): spec = the region keys with
 * source=tcp (the chunk server is the destination's store), tracker=..., the
 * writer keys pattern, write_fraction, write_bytes, and period_ms [10] (one
 * writer interval per period), max_rounds [8], converge_chunks [one interval's
 * writes]. Pre-copy rounds run while the writer writes; at cut-over the writer
 * stops and the rest is pushed; then it returns JSON with monotonic-clock
 * timestamps (t_start_ns, t_stop_ns, t_cutover_ns; CLOCK_MONOTONIC is shared by
 * every process of the machine) and intervals_written. */
int fl_migrate_source(const char *spec, char *out, size_t outlen);

/* Migrate, destination half: r is a fresh uffd or sigsegv region on the same
 * chunk server (created before the cut-over). Serves the application's
 * accesses while bg_threads=N [2] pull every chunk; then rebuilds the source's
 * final contents from intervals=N (its intervals_written) and the writer keys,
 * and compares them with r's memory chunk by chunk ("verified"). */
int fl_migrate_dest(fl_region *r, const char *spec, char *out, size_t outlen);

/* Beyond the thesis (issue 6), region keys for uffd and sigsegv:
 *   prefetch=none|ahead:N|adaptive[:N]|background|criu   [none] (native/src/prefetch/prefetch.h)
 *   depth=N                  [16]   prefetch READs in flight (pipelined)
 *   pf_conns=N               [depth/16, 1..8] connections the prefetcher spreads them over
 *   uffd_install=copy|continue|move [copy] uffd: UFFDIO_COPY; a memfd + MINOR faults + UFFDIO_CONTINUE;
 *                            or an anonymous mirror populated at setup whose pages UFFDIO_MOVE maps (Linux 6.8+)
 *   vma_span=N|auto          [1]    sigsegv: chunks a miss fetches and opens together (auto: fits vm.max_map_count)
 *   huge=none|thp|hugetlb    [none] pages behind the region (hugetlb: chunks of 2 MiB, needs vm.nr_hugepages)
 * and run keys: workload=read-zipf|read-sparse, zipf_s=F [1], touch_fraction=F [0.1],
 *   app_threads=N [1] (each thread its own contiguous share of the order),
 *   wait_fill=1 (background/criu: after the accesses, wait until every chunk is there and verify it all). */

/* Test hook: read one byte at addr, so a test can provoke a fault where it
 * chooses (e.g. outside every region, to see the chained handler crash). */
int fl_touch(uintptr_t addr);

/* Monotonic clock in nanoseconds (CLOCK_MONOTONIC), the timer every figure uses. */
uint64_t fl_now_ns(void);

/* An NBD server (the Network Block Device protocol, NetworkBlockDevice/nbd
 * doc/proto.md) on two threads of this process (native/src/server/nbd_server.h):
 * one export whose bytes are fl_fill(seed, offset) until written; writes live
 * in a sparse store of 4 KiB pages. Fixed newstyle handshake; NBD_OPT_EXPORT_NAME,
 * NBD_OPT_GO, NBD_OPT_INFO (NBD_INFO_DESCRIPTION "faultlab seed=N" when asked
 * for), NBD_OPT_LIST, NBD_OPT_ABORT; simple replies to
 * NBD_CMD_READ, WRITE, FLUSH and DISC. Each reply leaves at its request's
 * receive time + rtt_us, in order per connection (the kernel's receive stamp,
 * or without rx_stamps the time the server read the request).
 * Spec keys (defaults in brackets):
 *   listen=ADDR                 [127.0.0.1] IPv4 or IPv6 literal; anything but loopback must be asked for
 *   port=N                      [0] 0 = any free port (fl_nbd_port tells which)
 *   region=BYTES seed=N         [64MiB, 1] export size (K/M/G/TiB suffixes) and contents
 *   rtt_us=N                    [0] emulated round trip, at most 10 s
 *   export=NAME                 [faultlab] its name; the empty name (the default export) reaches it too
 *   max_conns=N                 [1024] at the cap a newcomer takes the slot of the oldest
 *                               connection still in its handshake (not waiting on a held
 *                               reply) or finished; refused (accepted, closed at once) when
 *                               no connection gives its slot up
 *   queue_cap=BYTES             [64MiB] queued reply bytes per connection (>= one 32 MiB READ reply)
 *   total_cap=BYTES             [256MiB] queued reply bytes in all (>= queue_cap)
 *   store_cap=BYTES             [4GiB] written bytes kept (whole pages); past it, WRITE gets ENOSPC
 *   handshake_timeout_ms=N      [10000] from accept to transmission
 *   idle_timeout_ms=N           [60000] nothing read or sent (a reply held for its RTT is not idle),
 *                               closed only while 3/4 of max_conns are in use
 *   payload_timeout_ms=N        [10000] from a WRITE's header to its last payload byte
 *   log_fd=N                    [2] one line per refused or closed-for-cause connection; -1 = none
 *   cpu=N                       [unpinned] pin the server's threads to CPU N (one
 *                               this process may run on)
 *   rx_stamps=0|1               [1 if rtt_us > 0] the kernel's receive stamp (SO_TIMESTAMPNS),
 *                               where deadlines and lateness count from; without it, from
 *                               when the server read the request
 * A connection is not read while its replies fill queue_cap or all replies
 * fill total_cap. On a bad spec returns NULL with one line in err. */
typedef struct fl_nbd_server fl_nbd_server;
fl_nbd_server *fl_nbd_start(const char *spec, char *err, size_t errlen);
/* The port it listens on. */
int fl_nbd_port(fl_nbd_server *s);
/* Counters as one JSON object: requests, reads, writes, flushes, errors (error
 * replies), bytes_read, bytes_written, conns_accepted/refused/closed/
 * closed_for_cause/open, queued_bytes, max_queued_bytes, max_conn_queued_bytes,
 * paused_reads, late_samples, late_p50_ns (of the last 65536 replies) and
 * late_max_ns (reply send start - deadline), sender_wakeups (the sender thread's
 * waits that ended: replies the event loop sends itself at RTT 0 wake it not).
 * 0, or -1 with a message in json. */
int fl_nbd_stats(fl_nbd_server *s, char *json, size_t len);
/* Close every connection, join both threads, free everything. NULL is allowed. */
void fl_nbd_stop(fl_nbd_server *s);

#ifdef __cplusplus
}
#endif
#endif
