/* prefetch=ahead:N: after a miss at chunk i, fetch i+1..i+N. The first of
 * them is held back as a trigger: when the application reaches it, the next N
 * follow, so a sequential reader streams with about N chunks in flight instead
 * of stalling for a round trip every N chunks. */
#include "prefetch/prefetch.h"

#include <stdlib.h>

static int ahead_init(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen)
{
    char *end = NULL;
    unsigned long long n = arg ? strtoull(arg, &end, 10) : 0;
    if (!arg || end == arg || *end || n < 1 || n > (1u << 24)) {
        fl_errf(err, errlen, "prefetch=ahead:N needs N, the chunks to fetch after a fault (1 to 16777216)");
        return -1;
    }
    p->n = n;
    return 0;
}

static uint64_t cap(const struct fl_pf_policy *p, uint64_t i)
{
    return i < p->nchunks ? i : p->nchunks;
}

static void ahead_fault(struct fl_pf_policy *p, uint64_t idx)
{
    p->next = cap(p, idx + 1);
    p->end = cap(p, idx + 1 + p->n);
    p->trigger = p->next < p->end ? p->next : FL_PF_NONE;
}

static void ahead_trigger(struct fl_pf_policy *p, uint64_t idx)
{
    (void)idx;
    if (p->next > p->end)
        p->end = p->next;
    p->trigger = p->end < p->nchunks ? p->end : FL_PF_NONE;
    p->end = cap(p, p->end + p->n);
}

static bool ahead_refill(struct fl_pf_policy *p)
{
    (void)p;
    return false; /* only faults and triggers move the window */
}

const struct fl_pf_policy_ops fl_pf_ahead = {
    .name = "ahead",
    .init = ahead_init,
    .on_fault = ahead_fault,
    .on_trigger = ahead_trigger,
    .refill = ahead_refill,
};
