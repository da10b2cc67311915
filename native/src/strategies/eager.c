/* Baseline `eager`: copy the whole region from the source before the workload
 * starts, the alternative lazy pulling competes with. The copy is timed
 * (prefill_ns) and counts toward first-access and total time. */
#include "core/internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#define EAGER_REQUEST (1u << 20) /* bytes per request: large, to be transport-bound */

static int eager_create(struct fl_region *r, char *err, size_t errlen)
{
    void *p = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)r->cfg.region_bytes, strerror(errno));
        return -1;
    }
    r->base = p;
    return 0;
}

static int eager_before(struct fl_region *r, char *err, size_t errlen)
{
    struct fl_conn *conn = fl_tls_wctx->conn;
    uint64_t t0 = fl_now();
    for (uint64_t off = 0; off < r->cfg.region_bytes; off += EAGER_REQUEST) {
        uint64_t n = r->cfg.region_bytes - off < EAGER_REQUEST ? r->cfg.region_bytes - off : EAGER_REQUEST;
        char cause[FL_ERR_LEN];
        if (r->source->ops->read(conn, off, r->base + off, n, cause, sizeof cause)) {
            fl_errf(err, errlen, "eager: copy failed at offset 0x%llx: %s", (unsigned long long)off, cause);
            return -1;
        }
    }
    r->prefill_ns = fl_now() - t0;
    if (!r->prefill_ns)
        r->prefill_ns = 1;
    return 0;
}

static void eager_destroy(struct fl_region *r)
{
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    r->base = NULL;
}

const struct fl_strategy_ops fl_strategy_eager = {
    .name = "eager",
    .create = eager_create,
    .before_workload = eager_before,
    .destroy = eager_destroy,
};
