/* Clock (second chance): FIFO, but a chunk referenced since the hand last
 * passed goes round again with its bit cleared. The bit is set by what the
 * kernel reports (evict.h): the fetch itself, the first write, and for sigsegv
 * a reference fault, because the hand closes a chunk as it clears its bit
 * (second_chance), the way BSD simulated reference bits with protection. */
#include "evict/evict.h"

#include <sys/mman.h>

static int clock_init(struct fl_evict *e, uint64_t slots, uint64_t nchunks)
{
    e->nchunks = nchunks;
    void *p = mmap(NULL, nchunks ? nchunks : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    e->ref = p;
    if (fl_evict_ring_init(&e->ring, slots)) {
        munmap(p, nchunks ? nchunks : 1);
        e->ref = NULL;
        return -1;
    }
    return 0;
}

static void clock_insert(struct fl_evict *e, uint64_t idx)
{
    atomic_store_explicit(&e->ref[idx], 1, memory_order_relaxed);
    fl_evict_ring_push(&e->ring, idx);
}

static void clock_touch(struct fl_evict *e, uint64_t idx)
{
    atomic_store_explicit(&e->ref[idx], 1, memory_order_relaxed);
}

static bool clock_pick(struct fl_evict *e, enum fl_evict_verdict (*offer)(void *, uint64_t), void (*second_chance)(void *, uint64_t),
                       void *arg, uint64_t *victim)
{
    /* Two passes: the first may only clear bits. */
    for (uint64_t tries = 2 * e->ring.n; tries; tries--) {
        uint64_t idx = fl_evict_ring_pop(&e->ring);
        if (atomic_exchange_explicit(&e->ref[idx], 0, memory_order_relaxed)) {
            if (second_chance)
                second_chance(arg, idx);
        } else if (offer(arg, idx) == FL_EVICT_TAKE) {
            *victim = idx;
            return true;
        }
        fl_evict_ring_push(&e->ring, idx);
    }
    return false;
}

static void clock_destroy(struct fl_evict *e)
{
    fl_evict_ring_free(&e->ring);
    if (e->ref)
        munmap((void *)e->ref, e->nchunks ? e->nchunks : 1);
    e->ref = NULL;
}

const struct fl_evict_ops fl_evict_clock = {
    .name = "clock",
    .init = clock_init,
    .insert = clock_insert,
    .touch = clock_touch,
    .pick = clock_pick,
    .destroy = clock_destroy,
};
