/* prefetch=criu: the comparison point, CRIU lazy-pages' background transfer
 * (criu/uffd.c: xfer_pages, update_xfer_len): one request at a time, in
 * address order from the lowest chunk not yet there, of xfer_len bytes, where
 * xfer_len starts at 64 KiB, grows by 64 KiB per request up to 4 MiB, and is
 * reset to 64 KiB on every page fault. */
#include "prefetch/prefetch.h"

#define CRIU_XFER     (64u << 10)
#define CRIU_XFER_MAX (4u << 20)

static int criu_init(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen)
{
    if (arg) {
        fl_errf(err, errlen, "prefetch=criu takes no argument");
        return -1;
    }
    p->window = CRIU_XFER;
    p->max_depth = 1;
    p->max_run = CRIU_XFER_MAX / p->chunk_bytes ? CRIU_XFER_MAX / p->chunk_bytes : 1;
    p->next = p->end = 0;
    return 0;
}

static void criu_fault(struct fl_pf_policy *p, uint64_t idx)
{
    (void)idx;
    p->window = CRIU_XFER;
}

static void criu_trigger(struct fl_pf_policy *p, uint64_t idx)
{
    (void)p;
    (void)idx;
}

static bool criu_refill(struct fl_pf_policy *p)
{
    if (p->end >= p->nchunks)
        return false;
    uint64_t n = p->window / p->chunk_bytes ? p->window / p->chunk_bytes : 1;
    p->next = p->end;
    p->end = p->next + n < p->nchunks ? p->next + n : p->nchunks;
    p->window = p->window + CRIU_XFER < CRIU_XFER_MAX ? p->window + CRIU_XFER : CRIU_XFER_MAX;
    return true;
}

const struct fl_pf_policy_ops fl_pf_criu = {
    .name = "criu",
    .init = criu_init,
    .on_fault = criu_fault,
    .on_trigger = criu_trigger,
    .refill = criu_refill,
    .fills_region = true,
};
