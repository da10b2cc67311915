/* Eviction policies for a bounded resident set (core/resident.c): a file per
 * policy behind this interface. A policy orders the resident chunks; the
 * resident set calls it under its lock, so a policy takes none. `touch` is the
 * exception: it is lock-free and async-signal-safe (a signal handler calls it).
 *
 * What a policy can know is what the kernel tells: a chunk's fetch (a MISSING
 * or SIGSEGV miss, or a prefetch), its first write (uffd WP fault, sigsegv's
 * write to a read-only chunk) and, for sigsegv, a reference fault on a chunk
 * the clock hand closed (core/resident.c: the `reprotect` hook). Reads of a
 * resident uffd chunk leave no trace (no accessed bit reaches user space here:
 * page_idle is absent and PAGEMAP_SCAN reports written, not accessed). */
#ifndef FAULTLAB_EVICT_H
#define FAULTLAB_EVICT_H
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The resident set's answer about a candidate: take it (it is now the
 * caller's victim, out of the policy) or skip it for now (in flight, held
 * back, being marked): it stays, behind the others. */
enum fl_evict_verdict { FL_EVICT_TAKE, FL_EVICT_SKIP };

struct fl_evict;
struct fl_evict_ops {
    const char *name;
    /* slots: at most this many chunks are resident at once; nchunks: the region's. */
    int (*init)(struct fl_evict *e, uint64_t slots, uint64_t nchunks);
    void (*insert)(struct fl_evict *e, uint64_t idx); /* a chunk became resident (reserved) */
    void (*touch)(struct fl_evict *e, uint64_t idx); /* it was referenced (lock-free) */
    /* Choose a victim: offer candidates to `offer` (in the policy's order)
     * until it answers TAKE; the taken one leaves the policy. Sets *victim and
     * returns true, or false when no candidate was taken after one full pass.
     * `second_chance` (clock): called when the hand clears a chunk's
     * reference, so the strategy can close it and see the next access. */
    bool (*pick)(struct fl_evict *e, enum fl_evict_verdict (*offer)(void *arg, uint64_t idx),
                 void (*second_chance)(void *arg, uint64_t idx), void *arg, uint64_t *victim);
    void (*destroy)(struct fl_evict *e);
};

/* A queue of chunk indices, oldest first (both policies keep one). */
struct fl_evict_ring {
    uint64_t *v;
    uint64_t cap, head, n;
};

struct fl_evict {
    const struct fl_evict_ops *ops;
    struct fl_evict_ring ring;
    _Atomic uint8_t *ref; /* clock: a reference bit per chunk */
    uint64_t nchunks;
};

extern const struct fl_evict_ops fl_evict_fifo, fl_evict_clock;

/* Find a policy by name ("fifo", "clock"); NULL when unknown. */
const struct fl_evict_ops *fl_evict_find(const char *name);

int fl_evict_ring_init(struct fl_evict_ring *r, uint64_t cap);
void fl_evict_ring_free(struct fl_evict_ring *r);
static inline void fl_evict_ring_push(struct fl_evict_ring *r, uint64_t idx)
{
    r->v[(r->head + r->n++) % r->cap] = idx; /* cap >= slots: never full */
}
static inline uint64_t fl_evict_ring_pop(struct fl_evict_ring *r)
{
    uint64_t idx = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->n--;
    return idx;
}
#endif
