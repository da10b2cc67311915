/* Prefetch: a policy decides which chunks to pull before the application
 * touches them; one engine (prefetch/engine.c) pulls them on its own thread and
 * connections, several requests in flight, and hands them to the strategy to
 * install (uffd: UFFDIO_COPY, CONTINUE or MOVE; sigsegv: fill view + mprotect).
 * An install that copies (UFFDIO_COPY) runs on a second engine thread.
 *
 * The engine learns about the application only from faults, since installed
 * chunks no longer fault. So, as Linux readahead does with PG_readahead, a
 * policy may hold one prefetched chunk back as a trigger: the application's
 * (cheap, local) fault on it says "the stream is being consumed, fetch more".
 *
 * Spec (region key prefetch=):
 *   none            no prefetch (the fault path alone, as before)
 *   ahead:N         after a miss at i, chunks i+1..i+N; each trigger fetches N more
 *   adaptive[:N]    a window that doubles while accesses stay sequential (to N
 *                   chunks, default 64 MiB worth) and shrinks 4x on a jump
 *   background      a puller fills the whole region in order; faults are served
 *                   ahead of it (the fault path fetches a miss itself)
 *   criu            CRIU lazy-pages' heuristic, for comparison: in-order
 *                   background transfer, one request at a time of 64 KiB that
 *                   grows by 64 KiB per request (to 4 MiB), reset on each fault */
#ifndef FAULTLAB_PREFETCH_H
#define FAULTLAB_PREFETCH_H
#include "core/chunks.h"

#define FL_PF_NONE UINT64_MAX

/* A policy's state. Only the engine thread calls a policy, so no locks. The
 * policy publishes the run [next, end) it wants (chunk indices; the engine
 * skips chunks already there) and which chunk of it to hold back as a trigger. */
struct fl_pf_policy {
    const struct fl_pf_policy_ops *ops;
    uint64_t nchunks, chunk_bytes;
    uint64_t next, end, trigger;
    uint64_t n; /* ahead: N; adaptive: largest window */
    uint64_t window; /* adaptive: chunks; criu: bytes per request */
    uint64_t min_window; /* adaptive: smallest window */
    uint64_t last_fault;
    uint64_t max_run; /* chunks per request */
    int max_depth; /* requests in flight the policy allows (0: the region's depth) */
};

struct fl_pf_policy_ops {
    const char *name;
    /* arg: what follows "name:" (NULL when absent). */
    int (*init)(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen);
    /* The application missed chunk idx (the fault path fetches it itself). */
    void (*on_fault)(struct fl_pf_policy *p, uint64_t idx);
    /* The application reached the held-back chunk idx. */
    void (*on_trigger)(struct fl_pf_policy *p, uint64_t idx);
    /* [next, end) is used up: set the next run and return true, or return false. */
    bool (*refill)(struct fl_pf_policy *p);
    bool fills_region; /* pulls every chunk eventually (background, criu) */
};

extern const struct fl_pf_policy_ops fl_pf_none, fl_pf_ahead, fl_pf_adaptive, fl_pf_background, fl_pf_criu;

/* Parse "ahead:8" etc. and initialise p. */
int fl_pf_policy_init(struct fl_pf_policy *p, const char *spec, uint64_t nchunks, uint64_t chunk_bytes, char *err, size_t errlen);

/* ---- the engine ------------------------------------------------------------ */

/* What a strategy does with pulled chunks. Called on the engine thread. */
struct fl_pf_target {
    void *arg;
    /* Where the answer for chunks [idx, idx+n) lands: its final place
     * (sigsegv's fill view), or NULL for an engine buffer (uffd). */
    uint8_t *(*landing)(void *arg, uint64_t idx, uint64_t n);
    /* Make [idx, idx+n) visible; the bytes are at src. 0, or -1 with a cause. */
    int (*install)(void *arg, uint64_t idx, uint64_t n, const uint8_t *src, char *cause, size_t len);
    /* Keep chunk idx (bytes at src) for the fault path to install; false when
     * it cannot (then the engine installs it normally). */
    bool (*stage)(void *arg, uint64_t idx, const uint8_t *src);
    /* Undo stage (a fault asked for the chunk meanwhile). May be NULL. */
    void (*unstage)(void *arg, uint64_t idx);
    /* The engine failed with [idx, idx+n) claimed: unblock whoever waits. */
    void (*abandon)(void *arg, uint64_t idx, uint64_t n);
    /* install copies the bytes (uffd's UFFDIO_COPY): with cpus=free it runs on
     * a thread of its own, so the engine receives the next answers meanwhile
     * (pinned beside the engine, it would only add context switches). Then
     * install, stage, unstage and abandon may run on either thread. */
    bool install_copies;
};

struct fl_pf_counts {
    uint64_t prefetched; /* chunks installed or staged by the engine */
    uint64_t bytes; /* bytes it fetched */
    uint64_t requests; /* READs it sent */
    uint64_t filled_ns; /* fills_region: when every chunk was there (0: not yet) */
    int conns; /* connections it pulls over */
    bool installer; /* an installer thread of its own installed the answers (see engine.c) */
};

struct fl_pf_engine;

/* Start the engine for region r (its own connection and thread), or set
 * *out = NULL when the policy is none. */
int fl_pf_start(struct fl_region *r, struct fl_chunks *chunks, const struct fl_pf_target *t, struct fl_pf_engine **out, char *err,
                size_t errlen);
/* Async-signal-safe: a miss / a trigger reached (from uffd handlers and signal handlers). */
void fl_pf_hint_fault(struct fl_pf_engine *e, uint64_t idx);
void fl_pf_hint_trigger(struct fl_pf_engine *e, uint64_t idx);
/* Does the policy pull the whole region (background, criu)? false for NULL. */
bool fl_pf_fills_region(const struct fl_pf_engine *e);
/* Wait until a region-filling policy has every chunk (or timeout_ms passed, or failure). */
int fl_pf_wait_filled(struct fl_pf_engine *e, int timeout_ms);
/* Stop pulling and join the thread (in-flight answers are dropped). NULL is fine. */
void fl_pf_stop(struct fl_pf_engine *e);
void fl_pf_counts(struct fl_pf_engine *e, struct fl_pf_counts *out);
/* CPU time so far of its threads, while they run (0 for NULL). */
uint64_t fl_pf_cpu_ns(const struct fl_pf_engine *e);
void fl_pf_destroy(struct fl_pf_engine *e);
#endif
