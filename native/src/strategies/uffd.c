/* Strategy `uffd`: userfaultfd MISSING mode. Handler threads wait on the uffd,
 * fetch the faulting chunk from the source into a private buffer and install it
 * with UFFDIO_COPY, which maps it atomically and wakes the faulting thread.
 *
 * uffd_install=continue: the region is a memfd mapped twice, like sigsegv's;
 * its pages exist (populated) but are not mapped in the region's view, so an
 * access raises a MINOR fault. Chunks are received straight into the second
 * view and mapped with UFFDIO_CONTINUE: no copy, where UFFDIO_COPY copies every
 * byte once more (the prefetch engine's bottleneck: docs/benchmarks.md).
 *
 * uffd_install=move: the region stays anonymous (MISSING faults), and beside it
 * an anonymous mirror of the same size is populated at setup. Chunks are
 * received straight into the mirror and their pages moved into the region with
 * UFFDIO_MOVE (Linux 6.8): no copy, and no page allocated during a fault, where
 * UFFDIO_COPY allocates every page it installs (mostly per-page work: compare
 * install_ns_p50 of copy, move and huge pages in a design-space run).
 *
 * handler=process: this process maps and registers the region, then hands the
 * uffd to a handler process (uffd_handler_process.c), which serves it with the
 * same code below through fl_uffd_adopt. */
#include "core/internal.h"
#include "prefetch/prefetch.h"
#include "core/uffd_open.h"
#include "strategies/uffd_handler_process.h"
#include "core/resident.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
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
    uint64_t again_addr, again; /* the same present address reported over and over */
};

struct uffd_state {
    int uffd;
    int stopfd; /* eventfd: wakes the handlers at destroy */
    const char *how;
    struct uffd_handler h[FL_MAX_HANDLERS];
    struct fl_chunks chunks; /* who fetches each chunk: one fetch per chunk, even with prefetch */
    struct fl_pf_engine *pf;
    uint8_t *marker; /* the bytes of the one prefetched chunk held back as a trigger */
    atomic_bool marker_busy;
    uint64_t held_bytes; /* how much of that chunk its trigger fault installs: the first page
                            with UFFDIO_COPY (the rest goes in when it is staged, off the
                            fault path), all of it with continue and move (a cheap map) */
    uint8_t *zero; /* a chunk of zeros to unblock faults where UFFDIO_ZEROPAGE cannot (hugetlb) */
    int memfd; /* uffd_install=continue: the region's memory ... */
    uint8_t *fill_view; /* ... and its second, writable view where fetches land;
                           uffd_install=move: the populated mirror where they land */
    enum fl_uffd_install mode;
    struct fl_uffd_hp *hp; /* handler=process, in the application: the handler process */
    bool adopted; /* in the handler process: r->base is the application's address, not ours */
    struct fl_resident *rs; /* resident_limit: chunks go in write-protected, so the first write says "dirty" */
};

static int wake(struct uffd_state *s, uint64_t addr, uint64_t len)
{
    struct uffdio_range w = {.start = addr, .len = len};
    return ioctl(s->uffd, UFFDIO_WAKE, &w);
}

/* Install [off, off+len) with one of the installing ioctls: UFFDIO_COPY from
 * src, UFFDIO_CONTINUE of the memfd's pages (already filled through the fill
 * view) or UFFDIO_MOVE of the mirror's pages; each maps atomically and wakes
 * the waiters. A partial install (EAGAIN) is continued. Returns 0, 1 when part
 * of the range was there already (EEXIST: the waiters are woken), -1 with
 * errno on failure. */
static int install_as(struct uffd_state *s, struct fl_region *r, enum fl_uffd_install how, uint64_t off, const uint8_t *src, uint64_t len)
{
    for (int tries = 0; len && tries < 1000; tries++) {
        const uint64_t dst = (uint64_t)(uintptr_t)(r->base + off);
        int64_t done;
        int rc;
        if (how == FL_INSTALL_CONTINUE) {
            struct uffdio_continue c = {.range = {.start = dst, .len = len}};
            rc = ioctl(s->uffd, UFFDIO_CONTINUE, &c);
            done = c.mapped;
        } else if (how == FL_INSTALL_MOVE) {
            struct uffdio_move m = {.dst = dst, .src = (uint64_t)(uintptr_t)(s->fill_view + off), .len = len};
            rc = ioctl(s->uffd, UFFDIO_MOVE, &m);
            done = m.move;
        } else {
            struct uffdio_copy c = {.dst = dst, .src = (uint64_t)(uintptr_t)src, .len = len, .mode = s->rs ? UFFDIO_COPY_MODE_WP : 0};
            rc = ioctl(s->uffd, UFFDIO_COPY, &c);
            done = c.copy;
        }
        if (!rc)
            return 0;
        if (errno == EAGAIN) {
            uint64_t n = done > 0 ? (uint64_t)done : 0;
            off += n;
            src = src ? src + n : NULL;
            len -= n;
            continue;
        }
        if (errno == EEXIST)
            return wake(s, dst, len) ? -1 : 1;
        return -1;
    }
    if (len)
        errno = EAGAIN;
    return len ? -1 : 0;
}

/* Install [off, off+len) whose bytes are at src (copy) or in the fill view (continue, move). */
static int install(struct uffd_state *s, struct fl_region *r, uint64_t off, const uint8_t *src, uint64_t len)
{
    return install_as(s, r, s->mode, off, src, len);
}

static const char *install_ioctl(const struct uffd_state *s)
{
    return s->mode == FL_INSTALL_CONTINUE ? "UFFDIO_CONTINUE" : s->mode == FL_INSTALL_MOVE ? "UFFDIO_MOVE" : "UFFDIO_COPY";
}

/* Map something (zeros) at [off, off+len) so that whoever waits there wakes
 * up; the failure flag is already set, so the bytes are never trusted. */
static void unblock(struct uffd_state *s, struct fl_region *r, uint64_t off, uint64_t len)
{
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (s->mode == FL_INSTALL_CONTINUE) {
        if (install_as(s, r, FL_INSTALL_CONTINUE, off, NULL, len) < 0)
            wake(s, (uint64_t)(uintptr_t)(r->base + off), len); /* best effort: the run failed already */
        return;
    }
    for (uint64_t o = off; o < off + len; o += chunk) {
        struct uffdio_zeropage z = {.range = {.start = (uint64_t)(uintptr_t)(r->base + o), .len = chunk}};
        if (!ioctl(s->uffd, UFFDIO_ZEROPAGE, &z))
            continue;
        if (errno == EEXIST)
            wake(s, z.range.start, chunk); /* best effort: the run failed already */
        else if (install_as(s, r, FL_INSTALL_COPY, o, s->zero, chunk) < 0)
            wake(s, z.range.start, chunk);
    }
}

/* A fault that cannot be served must still wake the faulting thread, or it
 * blocks forever: record the failure, then map zeros (the workload sees the
 * failure flag before it trusts the bytes). */
static void fail_and_unblock(struct uffd_state *s, struct fl_region *r, uint64_t off, const char *cause)
{
    char msg[FL_ERR_LEN];
    fl_sigsafe_msg(msg, sizeof msg, "uffd: fetch failed at offset ", off, cause);
    fl_region_fail(r, msg);
    unblock(s, r, off, r->cfg.chunk_bytes);
}

/* A miss: this handler claimed chunk idx, fetches it and installs it. */
static void serve_miss(struct uffd_state *s, struct uffd_handler *h, uint64_t idx)
{
    struct fl_region *r = h->r;
    const uint64_t chunk = r->cfg.chunk_bytes, off = idx * chunk;
    char cause[FL_ERR_LEN];
    if (s->pf)
        fl_pf_hint_fault(s->pf, idx); /* the window goes out while we fetch */
    if (s->rs && fl_resident_admit(s->rs, idx, h->conn, cause, sizeof cause)) {
        fail_and_unblock(s, r, off, cause);
        return;
    }
    uint64_t t0 = fl_now();
    uint8_t *dst = s->fill_view ? s->fill_view + off : h->buf;
    if (r->source->ops->read(h->conn, off, dst, chunk, cause, sizeof cause)) {
        fail_and_unblock(s, r, off, cause);
        return;
    }
    uint64_t t1 = fl_now();
    int rc = install(s, r, off, dst, chunk);
    if (rc < 0) {
        fail_and_unblock(s, r, off, strerror(errno));
        return;
    }
    uint64_t t2 = fl_now();
    fl_chunks_set(&s->chunks, idx, 1, FL_CHUNK_PRESENT);
    if (rc == 1)
        h->stats->duplicates++; /* installed by someone who did not claim it: never expected */
    else
        h->stats->faults++;
    h->stats->bytes_fetched += chunk;
    fl_samples_add(&h->stats->fetch_ns, t1 - t0);
    fl_samples_add(&h->stats->install_ns, t2 - t1);
}

static void serve_fault(struct uffd_state *s, struct uffd_handler *h, uint64_t addr)
{
    struct fl_region *r = h->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint64_t idx = (addr - (uint64_t)(uintptr_t)r->base) / chunk, off = idx * chunk;

    if (atomic_load(&r->failed)) {
        fail_and_unblock(s, r, off, "run already failed");
        return;
    }
    for (;;) {
        uint8_t c = fl_chunk_get(&s->chunks, idx);
        if (c == FL_CHUNK_ABSENT) {
            if (!fl_chunk_take(&s->chunks, idx, FL_CHUNK_ABSENT))
                continue;
            serve_miss(s, h, idx);
            return;
        }
        if (c == FL_CHUNK_STAGED) {
            /* The trigger: install the held-back chunk, ask the engine for more. */
            if (!fl_chunk_move(&s->chunks, idx, FL_CHUNK_STAGED, FL_CHUNK_CLAIMED))
                continue;
            uint64_t t0 = fl_now();
            if (install(s, r, off, s->marker, s->held_bytes) < 0) {
                fail_and_unblock(s, r, off, strerror(errno));
                return;
            }
            fl_chunks_set(&s->chunks, idx, 1, FL_CHUNK_PRESENT);
            atomic_store(&s->marker_busy, false);
            fl_samples_add(&h->stats->install_ns, fl_now() - t0);
            h->stats->trigger_faults++;
            fl_pf_hint_trigger(s->pf, idx);
            return;
        }
        if (c == FL_CHUNK_BUSY) { /* being evicted: fetch it again once it is gone */
            fl_resident_wait(s->rs, idx);
            if (atomic_load(&r->failed)) { /* an eviction that failed leaves its chunk busy */
                fail_and_unblock(s, r, off, "run already failed");
                return;
            }
            continue;
        }
        if (c == FL_CHUNK_CLAIMED && !fl_chunk_move(&s->chunks, idx, FL_CHUNK_CLAIMED, FL_CHUNK_WANTED))
            continue;
        if (c == FL_CHUNK_CLAIMED || c == FL_CHUNK_WANTED) {
            /* Being fetched (prefetcher, another handler): its UFFDIO_COPY wakes
             * the faulting thread; WANTED keeps the engine from holding it back. */
            h->stats->inflight_waits++;
            return;
        }
        /* PRESENT: installed after the fault was queued; the copy woke it already.
         * The kernel repeating a fault there means the page is not really there. */
        h->again = h->again_addr == addr ? h->again + 1 : 0;
        h->again_addr = addr;
        if (h->again > 1000) {
            fail_and_unblock(s, r, off, "the kernel keeps reporting an installed chunk missing");
            return;
        }
        if (wake(s, (uint64_t)(uintptr_t)(r->base + off), chunk))
            fail_and_unblock(s, r, off, "UFFDIO_WAKE failed");
        h->stats->duplicates++;
        return;
    }
}

/* ---- resident_limit: the write-protect fault and the resident set's hooks ---- */

static int wp_range(struct fl_region *r, uint64_t idx, uint64_t mode)
{
    struct uffd_state *s = r->strategy_state;
    struct uffdio_writeprotect wp = {
        .range = {.start = (uint64_t)(uintptr_t)(r->base + idx * r->cfg.chunk_bytes), .len = r->cfg.chunk_bytes}, .mode = mode};
    return ioctl(s->uffd, UFFDIO_WRITEPROTECT, &wp);
}
static int rs_protect(void *arg, uint64_t idx)
{
    return wp_range(arg, idx, UFFDIO_WRITEPROTECT_MODE_WP);
}
static int rs_unprotect(void *arg, uint64_t idx)
{
    return wp_range(arg, idx, 0); /* wakes the writer */
}
static const uint8_t *rs_bytes(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    return r->base + idx * r->cfg.chunk_bytes;
}
static int rs_drop(void *arg, uint64_t idx)
{
    struct fl_region *r = arg; /* anonymous: no uffd-wp marker survives, the next access is a MISSING fault */
    return madvise(r->base + idx * r->cfg.chunk_bytes, r->cfg.chunk_bytes, MADV_DONTNEED);
}

/* The first write to a chunk since its fetch: mark it dirty, then let it through. */
static void serve_wp(struct uffd_state *s, struct uffd_handler *h, uint64_t addr)
{
    struct fl_region *r = h->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint64_t idx = (addr - (uint64_t)(uintptr_t)r->base) / chunk, off = idx * chunk;
    for (;;) {
        int m = fl_resident_mark_dirty(s->rs, idx, rs_unprotect, r);
        if (m < 0)
            fail_and_unblock(s, r, off, "UFFDIO_WRITEPROTECT failed");
        if (m)
            return;
        uint8_t c = fl_chunk_get(&s->chunks, idx);
        if (atomic_load(&r->failed)) { /* let the write through: the run is over, the writer must not hang */
            if (rs_unprotect(r, idx))
                wake(s, (uint64_t)(uintptr_t)(r->base + off), chunk);
            return;
        }
        if (c == FL_CHUNK_BUSY) {
            fl_resident_wait(s->rs, idx);
            continue;
        }
        if (c == FL_CHUNK_STAGED) { /* a trigger: install it, then mark it */
            serve_fault(s, h, (uint64_t)(uintptr_t)(r->base + off));
            continue;
        }
        if (c != FL_CHUNK_PRESENT) { /* dropped since: the write retries as a miss */
            if (wake(s, (uint64_t)(uintptr_t)(r->base + off), chunk))
                fail_and_unblock(s, r, off, "UFFDIO_WAKE failed");
            return;
        }
    }
}

/* ---- the prefetch engine's view of this strategy ----------------------------- */

static int pf_install(void *arg, uint64_t idx, uint64_t n, const uint8_t *src, char *cause, size_t len)
{
    struct fl_region *r = arg;
    struct uffd_state *s = r->strategy_state;
    int rc = install(s, r, idx * r->cfg.chunk_bytes, src, n * r->cfg.chunk_bytes);
    if (rc < 0)
        snprintf(cause, len, "%s: %s", install_ioctl(s), strerror(errno));
    return rc < 0 ? -1 : 0;
}

static bool pf_stage(void *arg, uint64_t idx, const uint8_t *src)
{
    struct fl_region *r = arg;
    struct uffd_state *s = r->strategy_state;
    (void)idx;
    if (s->fill_view)
        return true; /* the bytes wait in the fill view; the fault only maps (moves) them */
    if (atomic_exchange(&s->marker_busy, true))
        return false; /* one held-back chunk at a time */
    /* Held back: the first page only. The chunk is still claimed by the engine,
     * so a fault on the rest meanwhile waits for this copy (which wakes it). */
    const uint64_t chunk = r->cfg.chunk_bytes, held = s->held_bytes;
    memcpy(s->marker, src, held);
    if (held < chunk && install(s, r, idx * chunk + held, src + held, chunk - held) < 0) {
        atomic_store(&s->marker_busy, false);
        fail_and_unblock(s, r, idx * chunk, strerror(errno));
        return false;
    }
    return true;
}

static void pf_unstage(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    (void)idx;
    atomic_store(&((struct uffd_state *)r->strategy_state)->marker_busy, false);
}

static uint8_t *pf_landing(void *arg, uint64_t idx, uint64_t n)
{
    struct fl_region *r = arg;
    (void)n;
    return ((struct uffd_state *)r->strategy_state)->fill_view + idx * r->cfg.chunk_bytes;
}

static void pf_abandon(void *arg, uint64_t idx, uint64_t n)
{
    struct fl_region *r = arg;
    unblock(r->strategy_state, r, idx * r->cfg.chunk_bytes, n * r->cfg.chunk_bytes);
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
        if (msg.event == UFFD_EVENT_PAGEFAULT && s->rs && (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP))
            serve_wp(s, h, msg.arg.pagefault.address);
        else if (msg.event == UFFD_EVENT_PAGEFAULT)
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
    fl_pf_destroy(s->pf); /* first: it installs through the uffd */
    fl_uffd_hp_destroy(s->hp);
    r->pf = NULL;
    r->chunks = NULL;
    if (s->stopfd >= 0) {
        uint64_t one = 1;
        if (write(s->stopfd, &one, sizeof one) < 0) { /* nothing more to do */
        }
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
    fl_resident_destroy(s->rs);
    r->resident = NULL;
    if (r->base && !s->adopted)
        munmap(r->base, r->cfg.region_bytes);
    if (s->uffd >= 0)
        close(s->uffd);
    if (s->fill_view)
        munmap(s->fill_view, r->cfg.region_bytes); /* move: what was not moved in */
    if (s->memfd >= 0)
        close(s->memfd);
    if (s->stopfd >= 0)
        close(s->stopfd);
    fl_chunks_free(&s->chunks);
    if (s->marker)
        munmap(s->marker, r->cfg.chunk_bytes);
    if (s->zero)
        munmap(s->zero, r->cfg.chunk_bytes);
    free(s);
    r->strategy_state = NULL;
}

static int start_serving(struct fl_region *r, struct uffd_state *s, char *err, size_t errlen);

static int uffd_create(struct fl_region *r, char *err, size_t errlen)
{
    struct uffd_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    s->uffd = s->stopfd = s->memfd = -1;
    s->mode = r->cfg.uffd_install;
    r->strategy_state = s;
    const bool hugetlb = !strcmp(r->cfg.huge, "hugetlb");
    if (r->cfg.handler == FL_HANDLER_PROCESS && s->mode == FL_INSTALL_MOVE) {
        fl_errf(err, errlen, "%s", FL_UFFD_HP_NO_MOVE);
        goto fail;
    }
    if (hugetlb && s->mode == FL_INSTALL_MOVE) {
        fl_errf(err, errlen,
                "uffd_install=move moves small anonymous pages: use huge=none or thp, or uffd_install=copy|continue for hugetlb");
        goto fail;
    }
    if (r->cfg.resident_limit && (s->mode != FL_INSTALL_COPY || strcmp(r->cfg.huge, "none"))) {
        fl_errf(err, errlen, "resident_limit works with uffd_install=copy and huge=none (write-protected UFFDIO_COPY, MADV_DONTNEED)");
        goto fail;
    }
    if (hugetlb && (r->cfg.chunk_bytes % (2u << 20) || r->cfg.region_bytes % (2u << 20))) {
        fl_errf(err, errlen, "huge=hugetlb needs chunk and region multiples of 2 MiB (the huge page size)");
        goto fail;
    }
    /* hugetlb reserves its pages now (no MAP_NORESERVE): with none free the
     * mmap fails here, clearly, where UFFDIO_COPY would answer EEXIST later. */
    if (s->mode == FL_INSTALL_CONTINUE) {
        /* Both views of one memfd; the fill view populates every page, so the
         * region's view only ever takes MINOR faults. */
        s->memfd = memfd_create("faultlab-uffd", MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0));
        if (s->memfd < 0 || ftruncate(s->memfd, (off_t)r->cfg.region_bytes)) {
            fl_errf(err, errlen, "memfd of %llu bytes: %s", (unsigned long long)r->cfg.region_bytes, strerror(errno));
            goto fail;
        }
        void *fill = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, s->memfd, 0);
        s->fill_view = fill == MAP_FAILED ? NULL : fill;
        r->base = s->fill_view ? mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0) : MAP_FAILED;
    } else {
        r->base = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | (hugetlb ? MAP_HUGETLB : MAP_NORESERVE), -1, 0);
    }
    if (s->mode == FL_INSTALL_MOVE && r->base != MAP_FAILED) {
        /* The mirror: every page allocated now, outside the timed run (as
         * sigsegv's and continue's memfd), and small, so a move never splits a
         * huge page. */
        void *mirror = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (mirror == MAP_FAILED || madvise(mirror, r->cfg.region_bytes, MADV_NOHUGEPAGE) ||
            madvise(mirror, r->cfg.region_bytes, MADV_POPULATE_WRITE)) {
            fl_errf(err, errlen, "uffd_install=move: cannot populate a %llu-byte mirror: %s", (unsigned long long)r->cfg.region_bytes,
                    strerror(errno));
            if (mirror != MAP_FAILED)
                munmap(mirror, r->cfg.region_bytes);
            goto fail;
        }
        s->fill_view = mirror;
    }
    if (r->base == MAP_FAILED) {
        r->base = NULL;
        fl_errf(err, errlen, "cannot map %llu bytes%s: %s", (unsigned long long)r->cfg.region_bytes,
                hugetlb ? " of huge pages (reserve them with sysctl vm.nr_hugepages)" : "", strerror(errno));
        goto fail;
    }
    /* THP: UFFDIO_COPY installs small pages; khugepaged may collapse them later. */
    if (!strcmp(r->cfg.huge, "thp") && madvise(r->base, r->cfg.region_bytes, MADV_HUGEPAGE)) {
        fl_errf(err, errlen, "huge=thp: madvise(MADV_HUGEPAGE): %s", strerror(errno));
        goto fail;
    }
    void *marker = mmap(NULL, r->cfg.chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *zero = mmap(NULL, r->cfg.chunk_bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    s->marker = marker == MAP_FAILED ? NULL : marker;
    s->held_bytes = s->mode == FL_INSTALL_COPY ? (hugetlb ? 2u << 20 : r->page_bytes) : r->cfg.chunk_bytes;
    s->zero = zero == MAP_FAILED ? NULL : zero;
    if (!s->marker || !s->zero || fl_chunks_init(&s->chunks, r->nchunks)) {
        fl_errf(err, errlen, "out of memory for the chunk states");
        goto fail;
    }
    uint64_t features = s->mode == FL_INSTALL_MOVE   ? UFFD_FEATURE_MOVE
                        : s->mode == FL_INSTALL_COPY ? 0
                        : hugetlb                    ? UFFD_FEATURE_MINOR_HUGETLBFS
                                                     : UFFD_FEATURE_MINOR_SHMEM;
    if ((s->uffd = fl_uffd_open(&s->how, err, errlen)) < 0)
        goto fail;
    if (fl_uffd_api(s->uffd, features, err, errlen)) {
        if (s->mode == FL_INSTALL_MOVE) /* say what is missing, not only the errno */
            fl_errf(err, errlen,
                    "uffd_install=move needs UFFD_FEATURE_MOVE (Linux 6.8+), which this kernel refused; use uffd_install=copy");
        goto fail;
    }
    r->uffd_path = s->how; /* a string literal: outlives the state */
    struct uffdio_register reg = {.range = {.start = (uint64_t)(uintptr_t)r->base, .len = r->cfg.region_bytes},
                                  .mode = (s->mode == FL_INSTALL_CONTINUE ? UFFDIO_REGISTER_MODE_MINOR : UFFDIO_REGISTER_MODE_MISSING) |
                                          (r->cfg.resident_limit ? UFFDIO_REGISTER_MODE_WP : 0)};
    if (ioctl(s->uffd, UFFDIO_REGISTER, &reg)) {
        fl_errf(err, errlen, "UFFDIO_REGISTER (%s) failed: %s", s->mode == FL_INSTALL_CONTINUE ? "MINOR" : "MISSING", strerror(errno));
        goto fail;
    }
    if (r->cfg.handler == FL_HANDLER_PROCESS) {
        if (fl_uffd_hp_start(r, s->uffd, s->memfd, &s->hp, err, errlen))
            goto fail;
        return 0;
    }
    if (start_serving(r, s, err, errlen))
        goto fail;
    r->chunks = &s->chunks;
    r->pf = s->pf;
    return 0;
fail:
    uffd_destroy(r);
    r->base = NULL;
    return -1;
}

/* The handler threads and the prefetch engine, on s->uffd. */
static int start_serving(struct fl_region *r, struct uffd_state *s, char *err, size_t errlen)
{
    if ((s->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
        fl_errf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    const struct fl_resident_hooks rh = {.arg = r, .protect = rs_protect, .bytes = rs_bytes, .drop = rs_drop};
    if (fl_resident_create(r, &s->chunks, &rh, fl_resident_min_chunks(r), &s->rs, err, errlen))
        return -1;
    r->resident = s->rs;
    /* The engine first: a handler reads s->pf, so it must be set before they start. */
    struct fl_pf_target t = {.arg = r,
                             .landing = s->fill_view ? pf_landing : NULL,
                             .install = pf_install,
                             .stage = pf_stage,
                             .unstage = pf_unstage,
                             .abandon = pf_abandon,
                             .install_copies = s->mode == FL_INSTALL_COPY};
    if (fl_pf_start(r, &s->chunks, &t, &s->pf, err, errlen))
        return -1;
    r->nhstats = r->cfg.handler_threads;
    for (int i = 0; i < r->cfg.handler_threads; i++) {
        struct uffd_handler *h = &s->h[i];
        h->r = r;
        h->stats = &r->hstats[i];
        if (fl_samples_init(&h->stats->fetch_ns, r->nchunks) || fl_samples_init(&h->stats->install_ns, r->nchunks)) {
            fl_errf(err, errlen, "out of memory for statistics");
            return -1;
        }
        h->buf = mmap(NULL, r->cfg.chunk_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (h->buf == MAP_FAILED) {
            h->buf = NULL;
            fl_errf(err, errlen, "cannot map a handler buffer: %s", strerror(errno));
            return -1;
        }
        /* Each handler owns a connection: fetches never share a lock. */
        if (r->source->ops->connect(r->source, &h->conn, err, errlen))
            return -1;
        int e = pthread_create(&h->thread, NULL, handler_main, h);
        if (e) {
            fl_errf(err, errlen, "cannot start handler thread: %s", strerror(e));
            return -1;
        }
        h->started = true;
    }
    return 0;
}

int fl_uffd_adopt(struct fl_region *r, int uffd, int memfd, char *err, size_t errlen)
{
    struct uffd_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    s->uffd = uffd;
    s->memfd = memfd;
    s->stopfd = -1;
    s->mode = r->cfg.uffd_install;
    s->adopted = true;
    r->strategy_state = s;
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (s->mode == FL_INSTALL_CONTINUE) { /* our own view of the application's memfd: fetches land in it */
        void *fill = mmap(NULL, r->cfg.region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, memfd, 0);
        s->fill_view = fill == MAP_FAILED ? NULL : fill;
    }
    void *marker = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *zero = mmap(NULL, chunk, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    s->marker = marker == MAP_FAILED ? NULL : marker;
    s->zero = zero == MAP_FAILED ? NULL : zero;
    s->held_bytes = s->mode == FL_INSTALL_COPY ? (!strcmp(r->cfg.huge, "hugetlb") ? 2u << 20 : r->page_bytes) : chunk;
    if ((s->mode == FL_INSTALL_CONTINUE && !s->fill_view) || !s->marker || !s->zero || fl_chunks_init(&s->chunks, r->nchunks)) {
        fl_errf(err, errlen, "handler process: cannot map its buffers: %s", strerror(errno));
        uffd_destroy(r);
        return -1;
    }
    if (start_serving(r, s, err, errlen)) {
        uffd_destroy(r);
        return -1;
    }
    r->chunks = &s->chunks;
    r->pf = s->pf;
    return 0;
}

static void uffd_quiesce(struct fl_region *r)
{
    struct uffd_state *s = r->strategy_state;
    if (s->hp) {
        fl_uffd_hp_collect(r, s->hp);
        return;
    }
    fl_pf_stop(s->pf);
    for (int i = 0; i < r->cfg.handler_threads; i++)
        while (atomic_load(&s->h[i].busy))
            sched_yield();
}

static uint64_t uffd_helpers_cpu_ns(struct fl_region *r)
{
    struct uffd_state *s = r->strategy_state;
    if (s->hp)
        return fl_uffd_hp_cpu_ns(s->hp); /* its handlers and engine are in the handler process */
    uint64_t ns = fl_pf_cpu_ns(s->pf);
    for (int i = 0; i < r->cfg.handler_threads; i++)
        ns = fl_cpu_add(ns, fl_thread_cpu_ns_of(s->h[i].thread));
    return ns;
}

const struct fl_strategy_ops fl_strategy_uffd = {
    .quiesce = uffd_quiesce,
    .helpers_cpu_ns = uffd_helpers_cpu_ns,
    .name = "uffd",
    .lazy = true,
    .create = uffd_create,
    .destroy = uffd_destroy,
};
