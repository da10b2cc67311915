/* prefetch=background: from the application's first fault on, a puller reads
 * the whole region in address order, `depth` requests in flight, while misses
 * jump the queue (the fault path fetches them itself on its own connection).
 * The eager copy, overlapped with the application instead of before it. */
#include "prefetch/prefetch.h"

static int background_init(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen)
{
    if (arg) {
        fl_errf(err, errlen, "prefetch=background takes no argument (depth=N sets the requests in flight)");
        return -1;
    }
    p->next = p->end = 0;
    return 0;
}

static void background_event(struct fl_pf_policy *p, uint64_t idx)
{
    (void)p;
    (void)idx;
}

static bool background_refill(struct fl_pf_policy *p)
{
    if (p->end >= p->nchunks)
        return false;
    p->next = p->end;
    p->end = p->next + p->max_run < p->nchunks ? p->next + p->max_run : p->nchunks;
    return true;
}

const struct fl_pf_policy_ops fl_pf_background = {
    .name = "background",
    .init = background_init,
    .on_fault = background_event,
    .on_trigger = background_event,
    .refill = background_refill,
    .fills_region = true,
};
