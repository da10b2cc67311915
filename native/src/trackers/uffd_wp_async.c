/* Tracker `uffd-wp-async`: UFFD_FEATURE_WP_ASYNC (Linux 6.7+) lets the kernel
 * resolve write-protect faults itself (it clears the page's protection and
 * goes on: no message, no handler thread). PAGEMAP_SCAN then reports the pages
 * whose protection was cleared (PAGE_IS_WRITTEN) and, with
 * PM_SCAN_WP_MATCHING, write-protects them again in the same walk, atomically
 * per page. PM_SCAN_CHECK_WPASYNC makes the scan fail rather than silently
 * skip a page that is not under async write-protect. */
#include "trackers/tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#ifndef PAGEMAP_SCAN /* Linux 6.7 uapi, absent from the 6.1 headers */
struct page_region {
    __u64 start, end, categories;
};
struct pm_scan_arg {
    __u64 size, flags, start, end, walk_end, vec, vec_len, max_pages, category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif
#ifndef PAGE_IS_WRITTEN
#define PAGE_IS_WRITTEN (1 << 1)
#endif
#ifndef PM_SCAN_WP_MATCHING
#define PM_SCAN_WP_MATCHING   (1 << 0)
#define PM_SCAN_CHECK_WPASYNC (1 << 1)
#endif

#define SCAN_VEC 512 /* page ranges per ioctl; the walk resumes at walk_end */

struct async_state {
    int uffd, pagemap;
    struct page_region vec[SCAN_VEC];
};

/* One pass over the region: report written page ranges and re-protect them. */
static int scan(struct fl_tracker *t, struct async_state *s, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    uint64_t start = (uint64_t)(uintptr_t)t->base, end = start + t->len;
    while (start < end) {
        struct pm_scan_arg a = {
            .size = sizeof a,
            .flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC,
            .start = start,
            .end = end,
            .vec = (uint64_t)(uintptr_t)s->vec,
            .vec_len = SCAN_VEC,
            .category_mask = PAGE_IS_WRITTEN,
            .return_mask = PAGE_IS_WRITTEN,
        };
        int k = ioctl(s->pagemap, PAGEMAP_SCAN, &a);
        if (k < 0) {
            fl_errf(err, errlen, "PAGEMAP_SCAN failed: %s%s", strerror(errno),
                    errno == ENOTTY || errno == EINVAL ? " (needs Linux 6.7+)" : "");
            return -1;
        }
        for (int i = 0; i < k && idx; i++) {
            uint64_t first = (s->vec[i].start - (uint64_t)(uintptr_t)t->base) / t->chunk;
            uint64_t last = (s->vec[i].end - 1 - (uint64_t)(uintptr_t)t->base) / t->chunk;
            for (uint64_t c = first; c <= last; c++)
                if (!*n || idx[*n - 1] < c) /* ranges come in address order */
                    idx[(*n)++] = c;
        }
        if (a.walk_end <= start) {
            fl_errf(err, errlen, "PAGEMAP_SCAN made no progress at 0x%llx", (unsigned long long)start);
            return -1;
        }
        start = a.walk_end;
    }
    return 0;
}

static void async_destroy(struct fl_tracker *t)
{
    struct async_state *s = t->state;
    if (!s)
        return;
    if (s->uffd >= 0)
        close(s->uffd);
    if (s->pagemap >= 0)
        close(s->pagemap);
    free(s);
    t->state = NULL;
}

static int async_create(struct fl_tracker *t, char *err, size_t errlen)
{
    struct async_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    s->uffd = s->pagemap = -1;
    t->state = s;
    uint64_t need = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED | (t->shared ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0);
    s->uffd = fl_uffd_wp_arm(t, need, need, "uffd-wp-async needs WP_ASYNC and WP_UNPOPULATED (Linux 6.7+)", err, errlen);
    if (s->uffd < 0)
        goto fail;
    if ((s->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC)) < 0) {
        fl_errf(err, errlen, "cannot open /proc/self/pagemap: %s", strerror(errno));
        goto fail;
    }
    uint64_t n = 0;
    if (scan(t, s, NULL, &n, err, errlen)) /* probe: fails clearly where PAGEMAP_SCAN is missing */
        goto fail;
    return 0;
fail:
    async_destroy(t);
    return -1;
}

static int async_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    return scan(t, t->state, idx, n, err, errlen);
}

const struct fl_tracker_ops fl_tracker_uffd_wp_async = {
    .name = "uffd-wp-async",
    .create = async_create,
    .collect = async_collect,
    .destroy = async_destroy,
};
