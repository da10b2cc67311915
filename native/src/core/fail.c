/* A region's first failure, recorded by whichever thread meets it (a handler,
 * the prefetch engine, a workload thread); later ones are dropped. Its own
 * file so that the strategies and the prefetch engine depend on core/ alone,
 * not on region.c, which depends on them. */
#include "core/internal.h"

void fl_region_fail(struct fl_region *r, const char *msg)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->failed, &expected, 1)) {
        size_t i = 0;
        for (; msg[i] && i + 1 < sizeof r->fail_msg; i++)
            r->fail_msg[i] = msg[i];
        r->fail_msg[i] = 0;
        atomic_store(&r->failed, 2); /* message complete */
        if (r->on_fail)
            r->on_fail(r);
    }
}
