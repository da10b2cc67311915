/* FIFO: evict the chunk resident longest, whatever its use, as umap's buffer
 * does (and writes dirty pages back). The reference the others are measured
 * against. A candidate still in flight (reserved, not yet installed) goes to
 * the back: it is the newest in all but its reservation. */
#include "evict/evict.h"

static int fifo_init(struct fl_evict *e, uint64_t slots, uint64_t nchunks)
{
    e->nchunks = nchunks;
    return fl_evict_ring_init(&e->ring, slots);
}

static void fifo_insert(struct fl_evict *e, uint64_t idx)
{
    fl_evict_ring_push(&e->ring, idx);
}

static void fifo_touch(struct fl_evict *e, uint64_t idx)
{
    (void)e;
    (void)idx; /* FIFO ignores use */
}

static bool fifo_pick(struct fl_evict *e, enum fl_evict_verdict (*offer)(void *, uint64_t), void (*second_chance)(void *, uint64_t),
                      void *arg, uint64_t *victim)
{
    (void)second_chance;
    for (uint64_t tries = e->ring.n; tries; tries--) {
        uint64_t idx = fl_evict_ring_pop(&e->ring);
        if (offer(arg, idx) == FL_EVICT_TAKE) {
            *victim = idx;
            return true;
        }
        fl_evict_ring_push(&e->ring, idx);
    }
    return false;
}

static void fifo_destroy(struct fl_evict *e)
{
    fl_evict_ring_free(&e->ring);
}

const struct fl_evict_ops fl_evict_fifo = {
    .name = "fifo",
    .init = fifo_init,
    .insert = fifo_insert,
    .touch = fifo_touch,
    .pick = fifo_pick,
    .destroy = fifo_destroy,
};
