/* Baseline `memory`: anonymous memory already populated with the contents
 * (the thesis's MAP_POPULATE region): what an access costs with no fault at all. */
#include "core/internal.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static int memory_create(struct fl_region *r, char *err, size_t errlen)
{
    void *p = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)r->cfg.region_bytes, strerror(errno));
        return -1;
    }
    r->base = p;
    fl_fill(r->base, r->cfg.region_bytes, r->cfg.seed, 0);
    return 0;
}

static void memory_destroy(struct fl_region *r)
{
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    r->base = NULL;
}

const struct fl_strategy_ops fl_strategy_memory = {
    .name = "memory",
    .create = memory_create,
    .destroy = memory_destroy,
};
