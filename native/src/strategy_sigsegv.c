/* Strategy `sigsegv`: the region is a PROT_NONE view of a memfd. The faulting
 * thread's SIGSEGV handler fetches the chunk into a second, writable view of the
 * same memfd (invisible through the PROT_NONE view, so no thread can see it
 * half-filled), then opens the chunk with mprotect: an atomic install. */
#include "internal.h"
#include "sigsegv_dispatch.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

enum { CHUNK_ABSENT, CHUNK_FILLING, CHUNK_PRESENT };

struct sigsegv_state {
    int memfd;
    uint8_t *fill_view;     /* RW view of the same memory: where fetches land */
    _Atomic uint8_t *state; /* per chunk: who installs it, and when it is there */
    bool owned;
};

/* Leave the handler without serving: the workload ends with r->fail_msg. */
static void give_up(struct fl_region *r, uint64_t off, const char *cause)
{
    char msg[FL_ERR_LEN];
    fl_sigsafe_msg(msg, sizeof msg, "sigsegv: fault not served at offset ", off, cause);
    fl_region_fail(r, msg);
    struct fl_wctx *w = fl_tls_wctx;
    if (w && w->r == r && w->jmp_armed)
        siglongjmp(w->abort_jmp, 1);
    /* A thread faultlab did not prepare touched the region: nothing to return to. */
    if (write(2, msg, strlen(msg)) < 0 || write(2, "\n", 1) < 0) { /* exiting anyway */ }
    abort();
}

static void on_fault(void *arg, uintptr_t addr)
{
    struct fl_region *r = arg;
    struct sigsegv_state *s = r->strategy_state;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint64_t idx = (addr - (uintptr_t)r->base) / chunk, off = idx * chunk;
    uint8_t expect = CHUNK_ABSENT;

    if (!atomic_compare_exchange_strong(&s->state[idx], &expect, CHUNK_FILLING)) {
        /* Another thread is installing it (or just did): wait, then retry the access. */
        while (atomic_load(&s->state[idx]) != CHUNK_PRESENT && !atomic_load(&r->failed))
            sched_yield();
        if (atomic_load(&r->failed))
            give_up(r, off, "run already failed");
        return;
    }
    struct fl_wctx *w = fl_tls_wctx;
    if (!w || w->r != r)
        give_up(r, off, "fault from a thread with no source connection");
    char cause[FL_ERR_LEN];
    uint64_t t0 = fl_now();
    if (r->source->ops->read(w->conn, off, s->fill_view + off, chunk, cause, sizeof cause))
        give_up(r, off, cause);
    uint64_t t1 = fl_now();
    if (mprotect(r->base + off, chunk, PROT_READ | PROT_WRITE))
        give_up(r, off, errno == ENOMEM ? "mprotect: ENOMEM (vm.max_map_count reached: too many split mappings)"
                                        : "mprotect failed");
    uint64_t t2 = fl_now();
    atomic_store(&s->state[idx], CHUNK_PRESENT);
    struct fl_handler_stats *st = &r->hstats[0];
    st->faults++;
    st->bytes_fetched += chunk;
    fl_samples_add(&st->fetch_ns, t1 - t0);
    fl_samples_add(&st->install_ns, t2 - t1);
}

static void sigsegv_destroy(struct fl_region *r)
{
    struct sigsegv_state *s = r->strategy_state;
    if (!s)
        return;
    if (s->owned)
        fl_sigsegv_disown(r->base);
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    if (s->fill_view)
        munmap(s->fill_view, r->cfg.region_bytes);
    if (s->state)
        munmap((void *)s->state, r->nchunks);
    if (s->memfd >= 0)
        close(s->memfd);
    free(s);
    r->strategy_state = NULL;
    r->base = NULL;
}

static int sigsegv_create(struct fl_region *r, char *err, size_t errlen)
{
    struct sigsegv_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    r->strategy_state = s;
    const uint64_t len = r->cfg.region_bytes;
    s->memfd = memfd_create("faultlab-sigsegv", MFD_CLOEXEC);
    if (s->memfd < 0 || ftruncate(s->memfd, (off_t)len)) {
        fl_errf(err, errlen, "memfd of %llu bytes: %s", (unsigned long long)len, strerror(errno));
        goto fail;
    }
    void *view = mmap(NULL, len, PROT_NONE, MAP_SHARED, s->memfd, 0);
    void *fill = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->memfd, 0);
    void *state = mmap(NULL, r->nchunks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    r->base = view == MAP_FAILED ? NULL : view;
    s->fill_view = fill == MAP_FAILED ? NULL : fill;
    s->state = state == MAP_FAILED ? NULL : state;
    if (!r->base || !s->fill_view || !s->state) {
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)len, strerror(errno));
        goto fail;
    }
    r->nhstats = 1; /* faults are served by the faulting (workload) thread */
    if (fl_samples_init(&r->hstats[0].fetch_ns, r->nchunks) || fl_samples_init(&r->hstats[0].install_ns, r->nchunks)) {
        fl_errf(err, errlen, "out of memory for statistics");
        goto fail;
    }
    if (fl_sigsegv_own(r->base, len, on_fault, r, err, errlen))
        goto fail;
    s->owned = true;
    return 0;
fail:
    sigsegv_destroy(r);
    return -1;
}

const struct fl_strategy_ops fl_strategy_sigsegv = {
    .name = "sigsegv",
    .lazy = true,
    .create = sigsegv_create,
    .destroy = sigsegv_destroy,
};
