/* faultlab internals: the source and strategy interfaces and the region. */
#ifndef FAULTLAB_INTERNAL_H
#define FAULTLAB_INTERNAL_H

#define _GNU_SOURCE
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include "faultlab.h"

#define FL_ERR_LEN      256
#define FL_MAX_HANDLERS 16

/* ---- parsed configuration ---------------------------------------------- */
enum fl_cpus { FL_CPUS_SAME, FL_CPUS_SPLIT, FL_CPUS_FREE };

struct fl_config {
    char strategy[32];
    char source[16];
    char host[64];
    int port;
    uint64_t region_bytes;
    uint64_t chunk_bytes;
    uint64_t seed;
    int handler_threads;
    enum fl_cpus cpus;
    int fetch_timeout_ms;
    int64_t corrupt_offset; /* -1: none */
    char disk_dir[256];
    char prefetch[32]; /* policy spec (prefetch/prefetch.h): none, ahead:N, adaptive[:N], background, criu */
    int depth; /* prefetch requests in flight */
    int pf_conns; /* prefetch connections (0 = one per 16 requests of depth) */
    int vma_span; /* sigsegv: chunks opened together (1 = per chunk, 0 = auto from vm.max_map_count) */
    char huge[16]; /* none, thp, hugetlb: page size behind the region */
    enum fl_uffd_install {
        FL_INSTALL_COPY, /* UFFDIO_COPY from a handler buffer (a second copy, pages allocated per fault) */
        FL_INSTALL_CONTINUE, /* memfd + MINOR faults + UFFDIO_CONTINUE (no copy) */
        FL_INSTALL_MOVE, /* fetch into a populated anonymous mirror, UFFDIO_MOVE its pages in (no copy) */
    } uffd_install;
    enum fl_handler_kind {
        FL_HANDLER_THREAD, /* uffd: handler threads in this process */
        FL_HANDLER_PROCESS, /* uffd: a handler process gets the uffd over a socket (strategies/uffd_handler_process.c) */
    } handler;
    uint64_t client_rtt_ns; /* tcp: emulated RTT held in the client (sources/tcp.c), 0 = none */
    char export_name[256]; /* tcp: the NBD export to open ("" = the server's default) */
    uint64_t resident_limit; /* uffd, sigsegv: bytes resident at most (0 = no limit; core/resident.h) */
    char evict[16]; /* the eviction policy past the limit: fifo, clock (evict/evict.h) */
};

/* Split a "key=value ..." spec into its pairs and hand each to `each` in order;
 * a token without '=', a spec of 1024 bytes or more, or an error from `each`
 * ends it. `what` names the spec in messages. Returns 0, or -1 with err set. */
typedef int (*fl_spec_fn)(const char *key, const char *value, void *ctx, char *err, size_t errlen);
int fl_spec_each(const char *spec, const char *what, fl_spec_fn each, void *ctx, char *err, size_t errlen);
/* A whole number in [min, max] (decimal, no sign, no suffix) into *out; -1 otherwise. */
int fl_parse_u64(const char *v, uint64_t min, uint64_t max, uint64_t *out);
/* Append "key=value " to rest (the keys a command passes on to fl_config_parse). */
int fl_spec_pass(char *rest, size_t restlen, const char *key, const char *value, char *err, size_t errlen);

/* Parse "key=value ..." into cfg; unknown keys and bad values are errors. */
int fl_config_parse(const char *spec, struct fl_config *cfg, char *err, size_t errlen);
const char *fl_cpus_name(enum fl_cpus c);
/* The diagnostics' placement keys: cpus=same|split|free, and a server thread's
 * CPU (one this process may run on: its affinity). 0, or -1 with "<what>: <key>
 * must be ..." in err. */
int fl_parse_cpus_key(const char *what, const char *v, enum fl_cpus *out, char *err, size_t errlen);
int fl_parse_cpu_key(const char *what, const char *key, const char *v, int *out, char *err, size_t errlen);
const char *fl_uffd_install_name(enum fl_uffd_install i);
const char *fl_handler_name(enum fl_handler_kind h);

/* ---- sources: where chunk contents come from ---------------------------
 * A source hands out connections; each fetching thread owns one, so fetches
 * never take a lock (the sigsegv strategy fetches inside a signal handler).
 * read/write must be async-signal-safe: no malloc, no locks, no stdio. */
struct fl_conn;
struct fl_source {
    const struct fl_source_ops *ops;
    uint64_t region_bytes;
    uint64_t seed;
    int fetch_timeout_ms;
};
struct fl_source_ops {
    const char *name;
    /* Open a connection for the calling thread. */
    int (*connect)(struct fl_source *s, struct fl_conn **out, char *err, size_t errlen);
    /* Read [off, off+len) into dst. err gets "cause" text on failure. */
    int (*read)(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen);
    /* Write [off, off+len) from src (push strategies). */
    int (*write)(struct fl_conn *c, uint64_t off, const void *src, size_t len, char *err, size_t errlen);
    /* Write n runs [off[i], off[i]+len[i]) from base+off[i], up to depth
     * requests in flight, and wait for every answer: a batch costs about one
     * round trip. NULL: the caller writes run by run (local: no round trips). */
    int (*write_runs)(struct fl_conn *c, const uint8_t *base, const uint64_t *off, const uint64_t *len, size_t n, int depth, char *err,
                      size_t errlen);
    /* Median round trip of n empty requests (tcp: NBD_CMD_FLUSH), in ns (0 for
     * in-process sources); sent_at, if not NULL: when the last one was sent
     * (CLOCK_MONOTONIC). */
    uint64_t (*ping_ns)(struct fl_conn *c, int n, uint64_t *sent_at);
    void (*disconnect)(struct fl_conn *c);
    void (*destroy)(struct fl_source *s);
    /* Pipelining (prefetch): send a READ of [off, off+len) into dst without
     * waiting, then receive the answers in the order sent, each with the same
     * off/dst/len. Several requests stay in flight on one connection, so a
     * round trip is paid once per batch, not once per chunk. The server may
     * answer in any order, so dst may be written from the send on, whenever
     * the connection reads replies. Async-signal-safe like read. */
    int (*send_read)(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen);
    int (*recv_read)(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen);
    /* Nonzero when the oldest send_read's answer is in already, so recv_read
     * will not wait and poll_fd may never turn readable for it (it was read
     * while waiting for another answer). NULL: answers are immediate (local). */
    int (*ready)(struct fl_conn *c);
    /* fd that turns readable when an answer arrives; -1: answers are immediate (local). */
    int (*poll_fd)(struct fl_conn *c);
};

struct fl_source *fl_source_local_create(const struct fl_config *cfg, char *err, size_t errlen);
struct fl_source *fl_source_tcp_create(const struct fl_config *cfg, char *err, size_t errlen);

/* ---- statistics ----------------------------------------------------------- */
/* Per-thread sample buffers, merged after the run; sized for one sample a chunk. */
struct fl_samples {
    uint64_t *v;
    uint64_t n, cap;
    bool sorted;
};
int fl_samples_init(struct fl_samples *s, uint64_t cap);
void fl_samples_add(struct fl_samples *s, uint64_t x); /* drops past cap */
void fl_samples_free(struct fl_samples *s);
/* Sorts in place (once); q in [0,1]; 0 when empty. */
uint64_t fl_samples_quantile(struct fl_samples *s, double q);
/* fault_ns_cdf_fine: quantiles p0, p1, ..., p100 (docs/columns.md). */
#define FL_CDF_FINE_STEPS 100

/* Handler-side counters, one per handler (or faulting) thread. */
struct fl_handler_stats {
    uint64_t faults; /* chunks installed */
    uint64_t duplicates; /* fault messages for a chunk already installed */
    uint64_t bytes_fetched; /* including fetches wasted on duplicates */
    struct fl_samples fetch_ns;
    struct fl_samples install_ns;
    uint64_t inflight_waits; /* faults on a chunk already being fetched (prefetcher or another thread) */
    uint64_t trigger_faults; /* faults on a prefetched chunk held back as a trigger (no fetch) */
    uint64_t span_chunks; /* sigsegv vma_span: chunks a miss fetched besides its own */
};

/* ---- strategies ---------------------------------------------------------- */
struct fl_region;
struct fl_strategy_ops {
    const char *name;
    bool lazy; /* faults pull chunks (uffd, sigsegv) */
    /* Map r->base of r->cfg.region_bytes and prepare; may fetch (eager). */
    int (*create)(struct fl_region *r, char *err, size_t errlen);
    /* Called on the workload thread before the first access (e.g. eager copy,
     * per-thread connection for sigsegv). */
    int (*before_workload)(struct fl_region *r, char *err, size_t errlen);
    /* Called on the workload thread after the last access. */
    void (*after_workload)(struct fl_region *r);
    /* Wait until handler threads finished their bookkeeping (a handler wakes
     * the faulting thread before it updates its counters). */
    void (*quiesce)(struct fl_region *r);
    /* CPU time so far of the strategy's own threads (handlers, the prefetch
     * engine) or handler process, FL_CPU_UNKNOWN if unreadable; NULL: none. */
    uint64_t (*helpers_cpu_ns)(struct fl_region *r);
    void (*destroy)(struct fl_region *r);
};

extern const struct fl_strategy_ops fl_strategy_uffd;
extern const struct fl_strategy_ops fl_strategy_sigsegv;
extern const struct fl_strategy_ops fl_strategy_memory;
extern const struct fl_strategy_ops fl_strategy_disk;
extern const struct fl_strategy_ops fl_strategy_eager;

struct fl_region {
    struct fl_config cfg;
    const struct fl_strategy_ops *ops;
    struct fl_source *source;
    uint8_t *base;
    uint64_t page_bytes;
    uint64_t nchunks;
    bool ran;

    /* Set once by whichever thread fails first; the workload stops at its next
     * access and fl_run returns -1 with this message. */
    atomic_int failed;
    char fail_msg[FL_ERR_LEN];
    /* Called once the first failure's message is complete (NULL: nothing);
     * the handler process forwards its failures to the application with it. */
    void (*on_fail)(struct fl_region *r);

    /* Handler statistics (uffd: one per handler thread; sigsegv: the workload thread). */
    struct fl_handler_stats hstats[FL_MAX_HANDLERS];
    int nhstats;

    /* Eager baseline: time to copy the whole region before the workload. */
    uint64_t prefill_ns;
    /* Wall time of ops->create (fl_region_create): the strategy's set-up. */
    uint64_t setup_ns;

    /* How this region's userfaultfd was opened (fl_uffd_open: "syscall",
     * "user-mode-only", "dev-userfaultfd"); NULL when it has none. Reported as
     * "uffd_path" in the run's JSON, so a row says the path its strategy used. */
    const char *uffd_path;

    void *strategy_state; /* owned by the strategy */

    /* Lazy strategies: their per-chunk states, prefetch engine (NULL: none)
     * and sigsegv's span, for the report and for waiting on a full region. */
    struct fl_chunks *chunks;
    struct fl_pf_engine *pf;
    uint64_t vma_span;
    /* handler=process: the engine runs in the handler process, which reports
     * its counts at the end (NULL: read them from pf). */
    const struct fl_pf_counts *pf_counts;
    struct fl_resident *resident; /* resident_limit: the bounded resident set (NULL: none) */

    /* fl_region_progress: accesses planned, and done per workload thread (one
     * cache line each, so the threads' relaxed stores never share one). */
    _Atomic uint64_t planned;
    struct {
        _Alignas(64) _Atomic uint64_t n;
    } done[FL_MAX_HANDLERS];
};

/* The workload thread's context, reachable from a signal handler through TLS:
 * its own source connection and where to jump when a fault cannot be served. */
struct fl_wctx {
    struct fl_region *r;
    struct fl_conn *conn;
    sigjmp_buf abort_jmp;
    volatile sig_atomic_t jmp_armed;
    /* Where this thread's sigsegv fault counters go (NULL: r->hstats[0]); one
     * slot per application thread, so concurrent handlers never share one. */
    struct fl_handler_stats *stats;
};
extern __thread struct fl_wctx *fl_tls_wctx __attribute__((tls_model("initial-exec")));

/* Record the first failure (thread-safe, async-signal-safe). */
void fl_region_fail(struct fl_region *r, const char *msg);

/* ---- small helpers ---------------------------------------------------------- */
uint64_t fl_now(void); /* CLOCK_MONOTONIC, ns */
uint64_t fl_thread_cpu_ns(void); /* CPU time of the calling thread */
/* CPU time of a live thread of this process, of a process (all its threads);
 * FL_CPU_UNKNOWN when it cannot be read (the thread or process is gone).
 * fl_cpu_add keeps an unknown unknown. */
#define FL_CPU_UNKNOWN UINT64_MAX
uint64_t fl_thread_cpu_ns_of(pthread_t t);
uint64_t fl_process_cpu_ns_of(pid_t pid);
uint64_t fl_cpu_add(uint64_t a, uint64_t b);
/* Minor page faults the calling thread has taken so far (getrusage RUSAGE_THREAD; 0 if unavailable):
 * a uffd fault counts once it is resolved, a SIGSEGV does not. */
long fl_thread_minflt(void);
uint64_t fl_clock_ns(clockid_t clk);
uint64_t fl_ts_ns(struct timespec t);
struct msghdr;
uint64_t fl_rx_time(struct msghdr *m); /* SCM_TIMESTAMPNS of a recvmsg on CLOCK_MONOTONIC, else now */
int fl_pin_cpu(int cpu); /* pin the calling thread; -1 = unpin (all CPUs) */
/* pthread_create with the thread on cpu from its first instruction, so it is
 * never seen elsewhere and a CPU it cannot run on fails here (-1: no pin, it
 * inherits its creator's). Returns pthread_create's error. */
int fl_thread_start_on(pthread_t *t, int cpu, void *(*fn)(void *), void *arg);
#define FL_SPIN_NS 250000ull /* fl_wait_precise spins this last stretch */
void fl_wait_precise(clockid_t clk, uint64_t deadline_ns); /* sleep, then spin: precise to a few us */
void fl_sleep_until_ns(uint64_t deadline_ns); /* sleep only (CLOCK_MONOTONIC): tens of us late */
int fl_cpu_for(enum fl_cpus c, bool handler); /* which CPU a role goes to, -1 = free */
void fl_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Async-signal-safe formatting for messages built in a signal handler:
 * "<prefix><offset as hex>: <cause>". */
void fl_sigsafe_msg(char *dst, size_t len, const char *prefix, uint64_t off, const char *cause);
/* Async-signal-safe text building (no stdio, no locks): appends to dst, always
 * NUL-terminated, cut at cap; a NULL dst or a cap of 0 takes nothing. */
struct fl_text {
    char *p;
    size_t cap, n;
};
void fl_text_init(struct fl_text *t, char *dst, size_t cap);
void fl_text_str(struct fl_text *t, const char *s);
void fl_text_u64(struct fl_text *t, uint64_t v); /* decimal */

/* fl_fill and fl_verify's fast check by one path, so tests run each whatever
 * the CPU picks. fl_fill_by: 0, or -1 when this CPU has no such path (nothing
 * written). fl_verify_any_diff: 1 when any word differs from fl_fill(seed,
 * offset), 0 when none, -1 when this CPU has no such path. */
enum fl_vec_path { FL_VEC_AUTO, FL_VEC_PLAIN, FL_VEC_AVX2 };
int fl_fill_by(void *buf, uint64_t len, uint64_t seed, uint64_t offset, enum fl_vec_path path);
int fl_verify_any_diff(const void *buf, uint64_t len, uint64_t seed, uint64_t offset, enum fl_vec_path path);

#endif
