/* The tracker registry and what trackers share: the dirty bitmap and the
 * userfaultfd feature probe. */
#include "trackers/tracker.h"
#include "core/uffd_open.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

static const struct fl_tracker_ops *const trackers[] = {
    &fl_tracker_uffd_wp, &fl_tracker_uffd_wp_async, &fl_tracker_mprotect, &fl_tracker_soft_dirty, &fl_tracker_none,
};
const char fl_tracker_names[] = "uffd-wp, uffd-wp-async, mprotect, soft-dirty, none";

struct fl_tracker *fl_tracker_create(const char *name, void *base, uint64_t len, uint64_t chunk, bool shared, int handler_cpu, char *err,
                                     size_t errlen)
{
    const struct fl_tracker_ops *ops = NULL;
    for (size_t i = 0; i < sizeof trackers / sizeof *trackers; i++)
        if (!strcmp(trackers[i]->name, name))
            ops = trackers[i];
    if (!ops) {
        fl_errf(err, errlen, "unknown tracker '%s' (known: %s)", name, fl_tracker_names);
        return NULL;
    }
    struct fl_tracker *t = calloc(1, sizeof *t);
    if (!t) {
        fl_errf(err, errlen, "out of memory");
        return NULL;
    }
    t->ops = ops;
    t->base = base;
    t->len = len;
    t->chunk = chunk;
    t->nchunks = len / chunk;
    t->page = (uint64_t)sysconf(_SC_PAGESIZE);
    t->shared = shared;
    t->handler_cpu = handler_cpu;
    if (ops->create(t, err, errlen)) {
        free(t);
        return NULL;
    }
    return t;
}

int fl_tracker_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    *n = 0;
    return t->ops->collect(t, idx, n, err, errlen);
}

void fl_tracker_destroy(struct fl_tracker *t)
{
    if (!t)
        return;
    t->ops->destroy(t);
    free(t);
}

int fl_dirty_init(struct fl_dirty *d, uint64_t nchunks)
{
    d->nwords = (nchunks + 63) / 64;
    void *p = mmap(NULL, d->nwords * 8, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    d->w = p == MAP_FAILED ? NULL : p;
    return d->w ? 0 : -1;
}

void fl_dirty_free(struct fl_dirty *d)
{
    if (d->w)
        munmap((void *)d->w, d->nwords * 8);
    d->w = NULL;
}

void fl_dirty_drain(struct fl_dirty *d, uint64_t *idx, uint64_t *n)
{
    for (uint64_t i = 0; i < d->nwords; i++) {
        if (!atomic_load_explicit(&d->w[i], memory_order_relaxed))
            continue;
        uint64_t bits = atomic_exchange_explicit(&d->w[i], 0, memory_order_acq_rel);
        while (bits) {
            int b = __builtin_ctzll(bits);
            idx[(*n)++] = i * 64 + (uint64_t)b;
            bits &= bits - 1;
        }
    }
}

uint64_t fl_uffd_kernel_features(void)
{
    const char *how;
    char err[FL_ERR_LEN];
    int fd = fl_uffd_open(&how, err, sizeof err);
    if (fd < 0)
        return 0;
    struct uffdio_api api = {.api = UFFD_API, .features = 0};
    uint64_t f = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
    close(fd);
    return f;
}

int fl_uffd_wp_range(int fd, void *start, uint64_t len, bool protect, char *err, size_t errlen)
{
    struct uffdio_writeprotect wp = {.range = {.start = (uint64_t)(uintptr_t)start, .len = len},
                                     .mode = protect ? UFFDIO_WRITEPROTECT_MODE_WP : 0};
    int rc;
    while ((rc = ioctl(fd, UFFDIO_WRITEPROTECT, &wp)) && errno == EAGAIN)
        ; /* the mm is changing under us (fork/remap): retry */
    if (rc)
        fl_errf(err, errlen, "UFFDIO_WRITEPROTECT (%s) failed: %s", protect ? "protect" : "unprotect", strerror(errno));
    return rc;
}

int fl_uffd_wp_arm(struct fl_tracker *t, uint64_t features, uint64_t required, const char *why, char *err, size_t errlen)
{
    uint64_t have = fl_uffd_kernel_features();
    if ((have & required) != required) {
        fl_errf(err, errlen, "%s: this kernel's userfaultfd lacks feature bits 0x%llx (offers 0x%llx)", why,
                (unsigned long long)(required & ~have), (unsigned long long)have);
        return -1;
    }
    const char *how;
    int fd = fl_uffd_open(&how, err, errlen);
    if (fd < 0)
        return -1;
    /* Optional features only when offered: older kernels refuse unknown bits. */
    if (fl_uffd_api(fd, features & have, err, errlen))
        goto fail;
    struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)t->base, .len = t->len}, .mode = UFFDIO_REGISTER_MODE_WP};
    if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
        fl_errf(err, errlen, "UFFDIO_REGISTER (WP, %s memory) failed: %s", t->shared ? "shared memfd" : "anonymous", strerror(errno));
        goto fail;
    }
    if (!(reg.ioctls & (1ull << _UFFDIO_WRITEPROTECT))) {
        fl_errf(err, errlen, "UFFDIO_WRITEPROTECT is not offered for this range (ioctls 0x%llx)", (unsigned long long)reg.ioctls);
        goto fail;
    }
    if (fl_uffd_wp_range(fd, t->base, t->len, true, err, errlen))
        goto fail;
    return fd;
fail:
    close(fd);
    return -1;
}
