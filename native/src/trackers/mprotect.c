/* Tracker `mprotect`: the region is made read-only; a write raises SIGSEGV,
 * which the shared dispatcher (core/sigsegv_dispatch.c, chaining to whatever
 * handler was there before) routes here. The handler opens the chunk, then
 * marks it dirty (same order argument as uffd-wp), and the write is retried.
 * Each opened chunk splits the VMA: vm.max_map_count bounds how many chunks
 * can be dirty at once (ENOMEM is reported as such). */
#include "trackers/tracker.h"
#include "core/sigsegv_dispatch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct mp_state {
    struct fl_dirty dirty;
    bool owned;
};

static void on_write_fault(void *arg, uintptr_t addr)
{
    struct fl_tracker *t = arg;
    struct mp_state *s = t->state;
    uint64_t idx = (addr - (uintptr_t)t->base) / t->chunk;
    if (mprotect(t->base + idx * t->chunk, t->chunk, PROT_READ | PROT_WRITE)) {
        /* The write would fault forever: stop with a message (async-signal-safe). */
        static const char msg[] = "faultlab: mprotect tracker: cannot open a chunk for writing "
                                  "(ENOMEM: vm.max_map_count reached?)\n";
        if (write(2, msg, sizeof msg - 1) < 0) { /* aborting anyway */
        }
        abort();
    }
    fl_dirty_set(&s->dirty, idx);
    atomic_fetch_add(&t->faults, 1);
}

static void mp_destroy(struct fl_tracker *t)
{
    struct mp_state *s = t->state;
    if (!s)
        return;
    if (s->owned) {
        fl_sigsegv_disown(t->base);
        mprotect(t->base, t->len, PROT_READ | PROT_WRITE); /* hand the region back writable */
    }
    fl_dirty_free(&s->dirty);
    free(s);
    t->state = NULL;
}

static int mp_create(struct fl_tracker *t, char *err, size_t errlen)
{
    struct mp_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    t->state = s;
    if (fl_dirty_init(&s->dirty, t->nchunks)) {
        fl_errf(err, errlen, "out of memory for the dirty bitmap");
        goto fail;
    }
    if (fl_sigsegv_own(t->base, t->len, on_write_fault, t, err, errlen))
        goto fail;
    s->owned = true;
    if (mprotect(t->base, t->len, PROT_READ)) {
        fl_errf(err, errlen, "mprotect(PROT_READ) of the region failed: %s", strerror(errno));
        goto fail;
    }
    return 0;
fail:
    mp_destroy(t);
    return -1;
}

static int mp_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    struct mp_state *s = t->state;
    fl_dirty_drain(&s->dirty, idx, n);
    for (uint64_t i = 0; i < *n;) {
        uint64_t j = i + 1;
        while (j < *n && idx[j] == idx[j - 1] + 1)
            j++;
        if (mprotect(t->base + idx[i] * t->chunk, (j - i) * t->chunk, PROT_READ)) {
            fl_errf(err, errlen, "mprotect(PROT_READ) to re-arm chunks failed: %s", strerror(errno));
            return -1;
        }
        i = j;
    }
    return 0;
}

const struct fl_tracker_ops fl_tracker_mprotect = {
    .name = "mprotect",
    .create = mp_create,
    .collect = mp_collect,
    .destroy = mp_destroy,
};
