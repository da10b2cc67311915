/* A bounded resident set (resident_limit=BYTES, evict=fifo|clock) for the
 * lazy strategies: at most limit / chunk chunks are resident or being fetched
 * at once, so a region may be larger than memory. Past the limit a chunk is
 * evicted, chosen by the policy (evict/evict.h); one written since it was
 * fetched is written to the source first (NBD WRITE), so nothing is lost.
 *
 * The order that keeps a concurrent write from being lost: the victim moves
 * PRESENT -> FL_CHUNK_BUSY (no fault path touches a BUSY chunk, it waits),
 * then the strategy's `protect` stops every access that could change it (uffd:
 * write-protect; sigsegv: PROT_NONE), then its dirty bit is read (nothing can
 * set it any more), it is written back if set, then `drop` frees its pages
 * (uffd: MADV_DONTNEED; sigsegv: punch the memfd's hole), and only then it
 * becomes ABSENT and may be fetched again, from the source that now holds
 * what was written. A write fault marks a chunk dirty the same way: PRESENT ->
 * BUSY, mark, let the write through, BUSY -> PRESENT.
 *
 * Async-signal-safe (sigsegv evicts in its signal handler): atomics, a spin
 * lock no holder can fault under, and the source's write. */
#ifndef FAULTLAB_RESIDENT_H
#define FAULTLAB_RESIDENT_H
#include "core/chunks.h"
#include "evict/evict.h"

#define FL_CHUNK_BUSY 5 /* being evicted or marked dirty: faults wait until it leaves */

struct fl_resident_hooks {
    void *arg;
    /* Stop every access that could change chunk idx (its state is BUSY). 0 or -1. */
    int (*protect)(void *arg, uint64_t idx);
    /* Where its bytes can be read for the write-back. */
    const uint8_t *(*bytes)(void *arg, uint64_t idx);
    /* Free its pages: the next access faults as on a chunk never fetched. 0 or -1. */
    int (*drop)(void *arg, uint64_t idx);
    /* clock: the hand cleared its reference bit; close it so the next access
     * says so (sigsegv). May be NULL. Called with the chunk PRESENT or not. */
    void (*reprotect)(void *arg, uint64_t idx);
};

struct fl_resident_counts {
    uint64_t limit_bytes, evictions, refetches, writebacks, max_resident_bytes, reref_faults;
};

struct fl_resident;

/* NULL and 0 when r->cfg.resident_limit is 0 (no limit). The limit must hold
 * `min_chunks` chunks (what may be in flight at once). */
int fl_resident_create(struct fl_region *r, struct fl_chunks *chunks, const struct fl_resident_hooks *h, uint64_t min_chunks,
                       struct fl_resident **out, char *err, size_t errlen);
void fl_resident_destroy(struct fl_resident *rs);

/* Room for one more chunk: evict (writing back through conn; NULL: the
 * resident set's own connection, for the prefetch engine) until there is.
 * wait: a fault needs it, so wait for a victim (up to the fetch timeout);
 * otherwise (prefetch) return 1 when nothing can be evicted now. 0: reserved;
 * -1: failed, cause says why. */
int fl_resident_reserve(struct fl_resident *rs, struct fl_conn *conn, bool wait, char *cause, size_t len);
/* reserve (waiting) + insert: the fault path's admission of chunk idx. */
int fl_resident_admit(struct fl_resident *rs, uint64_t idx, struct fl_conn *conn, char *cause, size_t len);
/* Chunks that may be reserved at once without a victim: faulting threads and
 * the prefetch engine's requests in flight (its depth x 1 MiB requests). */
uint64_t fl_resident_min_chunks(const struct fl_region *r);
/* Give a reservation back unused. */
void fl_resident_unreserve(struct fl_resident *rs);
/* The reserved room now belongs to chunk idx (claimed by the caller). */
void fl_resident_insert(struct fl_resident *rs, uint64_t idx);

/* Chunk idx's first write since its fetch: CAS PRESENT -> BUSY, mark it
 * dirty, then the caller lets the write through (`allow`) and this sets it
 * PRESENT again. Returns 1 when marked, 0 when the chunk was not PRESENT (the
 * caller waits with fl_resident_wait and looks again). */
int fl_resident_mark_dirty(struct fl_resident *rs, uint64_t idx, int (*allow)(void *arg, uint64_t idx), void *arg);
/* A fault on a chunk the clock hand closed: CAS PRESENT -> BUSY, note the
 * reference, reopen it (`open`, writable if dirty), PRESENT again. 1 done, 0
 * not PRESENT or not closed (the access retries), -1 open failed. */
int fl_resident_reopen(struct fl_resident *rs, uint64_t idx, int (*open)(void *arg, uint64_t idx, bool writable), void *arg);
/* Wait while chunk idx is BUSY (or until the run failed). */
void fl_resident_wait(struct fl_resident *rs, uint64_t idx);
bool fl_resident_dirty(struct fl_resident *rs, uint64_t idx);
/* Did the clock hand close it (sigsegv: reopen on the next access)? */
bool fl_resident_closed(struct fl_resident *rs, uint64_t idx);

/* Write back every dirty resident chunk (after the workload). 0, or -1. */
int fl_resident_flush(struct fl_resident *rs, char *cause, size_t len);
void fl_resident_counts(struct fl_resident *rs, struct fl_resident_counts *out);
#endif
