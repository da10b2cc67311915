/* prefetch=adaptive[:N]: a window that doubles while accesses stay sequential
 * (a miss at or just past the last window, or a trigger reached) up to N
 * chunks, and shrinks 4x on a jump, so random access wastes little and a
 * stream ramps up to the bandwidth-delay product. It starts at 64 KiB (CRIU's
 * unit) and its default ceiling is 64 MiB: 1 GB/s times 64 ms. */
#include "prefetch/prefetch.h"

#include <stdlib.h>

static int adaptive_init(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen)
{
    uint64_t n = (64ull << 20) / p->chunk_bytes;
    if (arg) {
        char *end = NULL;
        unsigned long long v = strtoull(arg, &end, 10);
        if (end == arg || *end || v < 1 || v > (1u << 24)) {
            fl_errf(err, errlen, "prefetch=adaptive:N: N is the largest window in chunks (1 to 16777216)");
            return -1;
        }
        n = v;
    }
    p->n = n ? n : 1;
    p->min_window = (64u << 10) / p->chunk_bytes;
    if (p->min_window < 1)
        p->min_window = 1;
    if (p->min_window > p->n)
        p->min_window = p->n;
    p->window = p->min_window;
    p->last_fault = FL_PF_NONE;
    return 0;
}

static uint64_t cap(const struct fl_pf_policy *p, uint64_t i)
{
    return i < p->nchunks ? i : p->nchunks;
}

static void adaptive_fault(struct fl_pf_policy *p, uint64_t idx)
{
    /* Sequential: the miss lies after the previous miss and no further than
     * the end of the window it started (the reader outran the prefetch). */
    bool seq = p->last_fault != FL_PF_NONE && idx > p->last_fault && idx <= p->end;
    if (seq)
        p->window = p->window * 2 < p->n ? p->window * 2 : p->n;
    else
        p->window = p->window / 4 > p->min_window ? p->window / 4 : p->min_window;
    p->last_fault = idx;
    p->next = cap(p, idx + 1);
    p->end = cap(p, idx + 1 + p->window);
    p->trigger = p->next < p->end ? p->next : FL_PF_NONE;
}

static void adaptive_trigger(struct fl_pf_policy *p, uint64_t idx)
{
    (void)idx;
    p->window = p->window * 2 < p->n ? p->window * 2 : p->n;
    if (p->next > p->end)
        p->end = p->next;
    p->trigger = p->end < p->nchunks ? p->end : FL_PF_NONE;
    p->end = cap(p, p->end + p->window);
}

static bool adaptive_refill(struct fl_pf_policy *p)
{
    (void)p;
    return false;
}

const struct fl_pf_policy_ops fl_pf_adaptive = {
    .name = "adaptive",
    .init = adaptive_init,
    .on_fault = adaptive_fault,
    .on_trigger = adaptive_trigger,
    .refill = adaptive_refill,
};
