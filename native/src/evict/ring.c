/* The queue both policies keep, and the policy registry. */
#include "evict/evict.h"

#include <string.h>
#include <sys/mman.h>

int fl_evict_ring_init(struct fl_evict_ring *r, uint64_t cap)
{
    void *p = mmap(NULL, (cap ? cap : 1) * sizeof *r->v, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -1;
    r->v = p;
    r->cap = cap ? cap : 1;
    r->head = r->n = 0;
    return 0;
}

void fl_evict_ring_free(struct fl_evict_ring *r)
{
    if (r->v)
        munmap(r->v, r->cap * sizeof *r->v);
    r->v = NULL;
}

const struct fl_evict_ops *fl_evict_find(const char *name)
{
    if (!strcmp(name, fl_evict_fifo.name))
        return &fl_evict_fifo;
    if (!strcmp(name, fl_evict_clock.name))
        return &fl_evict_clock;
    return NULL;
}
