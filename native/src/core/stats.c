/* Sample buffers: preallocated so handlers (including a signal handler) can
 * record without allocating; exact quantiles by sorting after the run. */
#include "core/internal.h"

#include <stdlib.h>
#include <sys/mman.h>

int fl_samples_init(struct fl_samples *s, uint64_t cap)
{
    s->n = 0;
    s->sorted = false;
    s->cap = cap ? cap : 1;
    /* mmap rather than malloc: large, and untouched pages cost nothing. */
    void *p = mmap(NULL, s->cap * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        s->v = NULL;
        s->cap = 0;
        return -1;
    }
    s->v = p;
    return 0;
}

void fl_samples_add(struct fl_samples *s, uint64_t x)
{
    if (s->n < s->cap) {
        s->v[s->n++] = x;
        s->sorted = false;
    }
}

void fl_samples_free(struct fl_samples *s)
{
    if (s->v)
        munmap(s->v, s->cap * sizeof(uint64_t));
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

uint64_t fl_samples_quantile(struct fl_samples *s, double q)
{
    if (!s->n)
        return 0;
    if (!s->sorted) {
        qsort(s->v, s->n, sizeof(uint64_t), cmp_u64);
        s->sorted = true;
    }
    double pos = q * (double)(s->n - 1);
    uint64_t i = (uint64_t)(pos + 0.5);
    return s->v[i < s->n ? i : s->n - 1];
}
