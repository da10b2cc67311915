/* Strategy `uffd`: userfaultfd MISSING mode. Handler threads wait on the uffd,
 * fetch the faulting chunk from the source into a private buffer and install it
 * with UFFDIO_COPY, which maps it atomically and wakes the faulting thread. */
#include "internal.h"
#include "uffd_open.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

struct uffd_handler {
    struct fl_region *r;
    struct fl_handler_stats *stats;
    struct fl_conn *conn;
    uint8_t *buf;
    pthread_t thread;
    bool started;
    atomic_bool busy; /* between reading a fault message and updating stats */
};

struct uffd_state {
    int uffd;
    int stopfd; /* eventfd: wakes the handlers at destroy */
    const char *how;
    struct uffd_handler h[FL_MAX_HANDLERS];
};

/* A fault that cannot be served must still wake the faulting thread, or it
 * blocks forever: record the failure, then map zeros (the workload sees the
 * failure flag before it trusts the bytes). */
static void fail_and_unblock(struct uffd_state *s, struct fl_region *r, uint64_t off, const char *cause)
{
    char msg[FL_ERR_LEN];
    fl_sigsafe_msg(msg, sizeof msg, "uffd: fetch failed at offset ", off, cause);
    fl_region_fail(r, msg);
    struct uffdio_zeropage z = {.range = {.start = (uint64_t)(uintptr_t)(r->base + off), .len = r->cfg.chunk_bytes}};
    if (ioctl(s->uffd, UFFDIO_ZEROPAGE, &z) && errno == EEXIST) {
        struct uffdio_range w = z.range;
        ioctl(s->uffd, UFFDIO_WAKE, &w);
    }
}

static void serve_fault(struct uffd_state *s, struct uffd_handler *h, uint64_t addr)
{
    struct fl_region *r = h->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint64_t off = (addr - (uint64_t)(uintptr_t)r->base) / chunk * chunk;
    char cause[FL_ERR_LEN];

    if (atomic_load(&r->failed)) {
        fail_and_unblock(s, r, off, "run already failed");
        return;
    }
    uint64_t t0 = fl_now();
    if (r->source->ops->read(h->conn, off, h->buf, chunk, cause, sizeof cause)) {
        fail_and_unblock(s, r, off, cause);
        return;
    }
    uint64_t t1 = fl_now();
    struct uffdio_copy c = {.dst = (uint64_t)(uintptr_t)(r->base + off), .src = (uint64_t)(uintptr_t)h->buf, .len = chunk};
    if (ioctl(s->uffd, UFFDIO_COPY, &c)) {
        if (errno == EEXIST) {
            /* Another handler installed (part of) this chunk first: just wake. */
            struct uffdio_range w = {.start = c.dst, .len = chunk};
            ioctl(s->uffd, UFFDIO_WAKE, &w);
            h->stats->duplicates++;
            h->stats->bytes_fetched += chunk;
            return;
        }
        fail_and_unblock(s, r, off, strerror(errno));
        return;
    }
    uint64_t t2 = fl_now();
    h->stats->faults++;
    h->stats->bytes_fetched += chunk;
    fl_samples_add(&h->stats->fetch_ns, t1 - t0);
    fl_samples_add(&h->stats->install_ns, t2 - t1);
}

static void *handler_main(void *arg)
{
    struct uffd_handler *h = arg;
    struct fl_region *r = h->r;
    struct uffd_state *s = r->strategy_state;
    fl_pin_cpu(fl_cpu_for(r->cfg.cpus, true));
    struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN}, {.fd = s->stopfd, .events = POLLIN}};
    for (;;) {
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[1].revents)
            break;
        struct uffd_msg msg;
        atomic_store(&h->busy, true);
        ssize_t n = read(s->uffd, &msg, sizeof msg);
        if (n != sizeof msg) {
            atomic_store(&h->busy, false);
            continue; /* EAGAIN: another handler took it */
        }
        if (msg.event == UFFD_EVENT_PAGEFAULT)
            serve_fault(s, h, msg.arg.pagefault.address);
        atomic_store(&h->busy, false);
    }
    return NULL;
}

static void uffd_destroy(struct fl_region *r)
{
    struct uffd_state *s = r->strategy_state;
    if (!s)
        return;
    if (s->stopfd >= 0) {
        uint64_t one = 1;
        if (write(s->stopfd, &one, sizeof one) < 0) { /* nothing more to do */ }
    }
    for (int i = 0; i < FL_MAX_HANDLERS; i++) {
        struct uffd_handler *h = &s->h[i];
        if (h->started)
            pthread_join(h->thread, NULL);
        if (h->conn)
            r->source->ops->disconnect(h->conn);
        if (h->buf)
            munmap(h->buf, r->cfg.chunk_bytes);
    }
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    if (s->uffd >= 0)
        close(s->uffd);
    if (s->stopfd >= 0)
        close(s->stopfd);
    free(s);
    r->strategy_state = NULL;
}

static int uffd_create(struct fl_region *r, char *err, size_t errlen)
{
    struct uffd_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    s->uffd = s->stopfd = -1;
    r->strategy_state = s;
    r->base = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)r->cfg.region_bytes, strerror(errno));
        goto fail;
    }
    if ((s->uffd = fl_uffd_open(&s->how, err, errlen)) < 0 || fl_uffd_api(s->uffd, 0, err, errlen))
        goto fail;
    struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)r->base, .len = r->cfg.region_bytes},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(s->uffd, UFFDIO_REGISTER, &reg)) {
        fl_errf(err, errlen, "UFFDIO_REGISTER (MISSING) failed: %s", strerror(errno));
        goto fail;
    }
    if ((s->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
        fl_errf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    r->nhstats = r->cfg.handler_threads;
    for (int i = 0; i < r->cfg.handler_threads; i++) {
        struct uffd_handler *h = &s->h[i];
        h->r = r;
        h->stats = &r->hstats[i];
        if (fl_samples_init(&h->stats->fetch_ns, r->nchunks) || fl_samples_init(&h->stats->install_ns, r->nchunks)) {
            fl_errf(err, errlen, "out of memory for statistics");
            goto fail;
        }
        h->buf = mmap(NULL, r->cfg.chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (h->buf == MAP_FAILED) {
            h->buf = NULL;
            fl_errf(err, errlen, "cannot map a handler buffer: %s", strerror(errno));
            goto fail;
        }
        /* Each handler owns a connection: fetches never share a lock. */
        if (r->source->ops->connect(r->source, &h->conn, err, errlen))
            goto fail;
        int e = pthread_create(&h->thread, NULL, handler_main, h);
        if (e) {
            fl_errf(err, errlen, "cannot start handler thread: %s", strerror(e));
            goto fail;
        }
        h->started = true;
    }
    return 0;
fail:
    uffd_destroy(r);
    r->base = NULL;
    return -1;
}

static void uffd_quiesce(struct fl_region *r)
{
    struct uffd_state *s = r->strategy_state;
    for (int i = 0; i < r->cfg.handler_threads; i++)
        while (atomic_load(&s->h[i].busy))
            sched_yield();
}

const struct fl_strategy_ops fl_strategy_uffd = {
    .quiesce = uffd_quiesce,
    .name = "uffd",
    .lazy = true,
    .create = uffd_create,
    .destroy = uffd_destroy,
};
