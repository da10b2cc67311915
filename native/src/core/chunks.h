/* Per-chunk state shared by the fault path (uffd handlers, sigsegv signal
 * handlers) and the prefetch engine, so that each chunk is fetched once:
 * whoever moves it ABSENT -> CLAIMED fetches and installs it.
 * Everything here is async-signal-safe (atomics and the futex syscall). */
#ifndef FAULTLAB_CHUNKS_H
#define FAULTLAB_CHUNKS_H
#include "core/internal.h"

enum {
    FL_CHUNK_ABSENT = 0,
    FL_CHUNK_CLAIMED = 1, /* being fetched (fault path or prefetcher) */
    FL_CHUNK_WANTED = 2, /* being fetched, and a fault waits for it: never hold it back */
    FL_CHUNK_STAGED = 3, /* prefetched but held back as a trigger: the next fault installs it */
    FL_CHUNK_PRESENT = 4, /* installed: accesses no longer fault */
};

struct fl_chunks {
    _Atomic uint8_t *state;
    uint64_t n;
    atomic_uint seq; /* futex word, bumped whenever a chunk becomes PRESENT */
    atomic_int waiters;
};

int fl_chunks_init(struct fl_chunks *c, uint64_t n);
void fl_chunks_free(struct fl_chunks *c);

static inline uint8_t fl_chunk_get(struct fl_chunks *c, uint64_t i)
{
    return atomic_load(&c->state[i]);
}

/* Move chunk i from `from` to CLAIMED; false if it was not in `from`. */
static inline bool fl_chunk_take(struct fl_chunks *c, uint64_t i, uint8_t from)
{
    return atomic_compare_exchange_strong(&c->state[i], &from, FL_CHUNK_CLAIMED);
}

/* Move chunk i from `from` to `to`; false if it was not in `from`. */
static inline bool fl_chunk_move(struct fl_chunks *c, uint64_t i, uint8_t from, uint8_t to)
{
    return atomic_compare_exchange_strong(&c->state[i], &from, to);
}

/* Set [i, i+n) to s; wakes waiters when s is PRESENT. */
void fl_chunks_set(struct fl_chunks *c, uint64_t i, uint64_t n, uint8_t s);
/* Wake every waiter (to see a failure). */
void fl_chunks_wake(struct fl_chunks *c);

/* Wait (futex, not spinning: the thread that installs may need this CPU)
 * until chunk i is PRESENT or *failed is set. Returns false on failure. */
bool fl_chunk_wait(struct fl_chunks *c, uint64_t i, atomic_int *failed);

/* Chunks in state s (after a run, for reports and tests). */
uint64_t fl_chunks_count(struct fl_chunks *c, uint8_t s);
#endif
