/* Tracker `soft-dirty`: the kernel's own reference. Writing "4" to
 * /proc/self/clear_refs clears every soft-dirty bit of the process (and
 * write-protects its pages); a later write sets bit 55 of the page's
 * /proc/self/pagemap entry. Collect reads the region's entries, then clears
 * again. Two limits, documented rather than hidden: clear_refs acts on the
 * whole process (other regions' bits too), and a write landing between the
 * pagemap read and the clear is lost, so it is only exact when the writer is
 * quiet during collect (write-track's intervals are; migrate's writer is not).
 * Kernels without CONFIG_MEM_SOFT_DIRTY accept "4" but never set bit 55: create
 * checks with a scratch page and refuses with a clear message. */
#include "trackers/tracker.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PM_SOFT_DIRTY (1ull << 55)
#define PM_BATCH      4096 /* pagemap entries per pread */

struct sd_state {
    int pagemap, clear_refs;
    uint64_t entries[PM_BATCH];
};

static int clear_all(struct sd_state *s, char *err, size_t errlen)
{
    if (pwrite(s->clear_refs, "4", 1, 0) != 1) {
        fl_errf(err, errlen, "writing 4 to /proc/self/clear_refs failed: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int entry(struct sd_state *s, const void *addr, uint64_t page, uint64_t *e)
{
    return pread(s->pagemap, e, 8, (off_t)((uintptr_t)addr / page * 8)) == 8 ? 0 : -1;
}

/* Does a write after clear_refs set bit 55? Checked on a scratch page. */
static int probe(struct fl_tracker *t, struct sd_state *s, char *err, size_t errlen)
{
    volatile uint8_t *p = mmap(NULL, t->page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        fl_errf(err, errlen, "soft-dirty probe: mmap: %s", strerror(errno));
        return -1;
    }
    p[0] = 1;
    uint64_t e = 0;
    int rc = clear_all(s, err, errlen);
    if (!rc) {
        p[0] = 2;
        if (entry(s, (void *)p, t->page, &e)) {
            fl_errf(err, errlen, "soft-dirty probe: pagemap read failed: %s", strerror(errno));
            rc = -1;
        } else if (!(e & PM_SOFT_DIRTY)) {
            fl_errf(err, errlen,
                    "soft-dirty unsupported by this kernel (CONFIG_MEM_SOFT_DIRTY): a write after "
                    "clear_refs left pagemap bit 55 clear");
            rc = -1;
        }
    }
    munmap((void *)p, t->page);
    return rc;
}

static void sd_destroy(struct fl_tracker *t)
{
    struct sd_state *s = t->state;
    if (!s)
        return;
    if (s->pagemap >= 0)
        close(s->pagemap);
    if (s->clear_refs >= 0)
        close(s->clear_refs);
    free(s);
    t->state = NULL;
}

static int sd_create(struct fl_tracker *t, char *err, size_t errlen)
{
    struct sd_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    t->state = s;
    s->pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    s->clear_refs = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (s->pagemap < 0 || s->clear_refs < 0) {
        fl_errf(err, errlen, "soft-dirty needs /proc/self/pagemap and /proc/self/clear_refs: %s", strerror(errno));
        goto fail;
    }
    if (probe(t, s, err, errlen) || clear_all(s, err, errlen))
        goto fail;
    return 0;
fail:
    sd_destroy(t);
    return -1;
}

static int sd_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    struct sd_state *s = t->state;
    uint64_t pages = t->len / t->page, per_chunk = t->chunk / t->page;
    off_t first = (off_t)((uintptr_t)t->base / t->page * 8);
    for (uint64_t p = 0; p < pages; p += PM_BATCH) {
        uint64_t k = pages - p < PM_BATCH ? pages - p : PM_BATCH;
        if (pread(s->pagemap, s->entries, k * 8, first + (off_t)(p * 8)) != (ssize_t)(k * 8)) {
            fl_errf(err, errlen, "reading /proc/self/pagemap failed: %s", strerror(errno));
            return -1;
        }
        for (uint64_t i = 0; i < k; i++) {
            uint64_t c = (p + i) / per_chunk;
            if ((s->entries[i] & PM_SOFT_DIRTY) && (!*n || idx[*n - 1] < c))
                idx[(*n)++] = c;
        }
    }
    return clear_all(s, err, errlen);
}

const struct fl_tracker_ops fl_tracker_soft_dirty = {
    .name = "soft-dirty",
    .create = sd_create,
    .collect = sd_collect,
    .destroy = sd_destroy,
};
