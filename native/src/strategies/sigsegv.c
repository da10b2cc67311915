/* Strategy `sigsegv`: the region is a PROT_NONE view of a memfd. The faulting
 * thread's SIGSEGV handler fetches the chunk into a second, writable view of the
 * same memfd (invisible through the PROT_NONE view, so no thread can see it
 * half-filled), then opens the chunk with mprotect: an atomic install. */
#include "core/internal.h"
#include "prefetch/prefetch.h"
#include "core/sigsegv_dispatch.h"
#include "core/resident.h"

#include <fcntl.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

struct sigsegv_state {
    int memfd;
    uint8_t *fill_view; /* RW view of the same memory: where fetches land */
    struct fl_chunks chunks; /* per chunk: who installs it, and when it is there */
    bool owned;
    uint64_t span; /* chunks a miss fetches and opens together (vma_span) */
    long max_map_count;
    atomic_uint_fast64_t opened; /* chunks opened so far (for the VMA-limit message) */
    struct fl_pf_engine *pf;
    struct fl_resident *rs; /* resident_limit: chunks open read-only, so the first write says "dirty" */
    /* resident_limit: a chunk per application thread (its hstats slot) where a
     * fault's answer lands before pwrite puts it in the memfd. Receiving into
     * the fill view would map its pages there and unmap them again: two page
     * table operations per page, each the cost of a minor fault in a VM. */
    uint8_t *bounce;
    /* resident_limit: a held-back (staged) chunk cannot be evicted, and under
     * random access its fault may never come; so one at a time, as uffd. */
    atomic_bool staged_one;
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
    if (write(2, msg, strlen(msg)) < 0 || write(2, "\n", 1) < 0) { /* exiting anyway */
    }
    abort();
}

/* Open chunks [idx, idx+n): mprotect splits the mapping around an isolated
 * open range, so random access multiplies VMAs until vm.max_map_count. */
static int open_chunks(struct fl_region *r, struct sigsegv_state *s, uint64_t idx, uint64_t n, char *cause, size_t len)
{
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (!mprotect(r->base + idx * chunk, n * chunk, s->rs ? PROT_READ : PROT_READ | PROT_WRITE)) {
        atomic_fetch_add(&s->opened, n);
        /* resident_limit: the bytes reached the memfd without a fill-view
         * mapping (fetch_resident, pf_install), so each resident page is mapped,
         * and counted, once: here. */
        if (s->rs)
            madvise(r->base + idx * chunk, n * chunk, MADV_POPULATE_READ); /* the access after the handler maps nothing */
        return 0;
    }
    struct fl_text t;
    fl_text_init(&t, cause, len);
    if (errno == ENOMEM) {
        fl_text_str(&t, "mprotect: ENOMEM after ");
        fl_text_u64(&t, atomic_load(&s->opened));
        fl_text_str(&t, " chunks opened: vm.max_map_count (");
        fl_text_u64(&t, (uint64_t)s->max_map_count);
        fl_text_str(&t, ") reached, every isolated open chunk splits the mapping; vma_span=auto opens spans");
    } else {
        fl_text_str(&t, "mprotect failed (errno ");
        fl_text_u64(&t, (uint64_t)errno);
        fl_text_str(&t, ")");
    }
    return -1;
}

/* resident_limit: put fetched bytes in the memfd without mapping them. */
static int fill_memfd(struct sigsegv_state *s, uint64_t off, const uint8_t *src, uint64_t len, char *cause, size_t clen)
{
    while (len) {
        ssize_t k = pwrite(s->memfd, src, len, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) {
            struct fl_text t;
            fl_text_init(&t, cause, clen);
            fl_text_str(&t, "pwrite into the memfd failed (errno ");
            fl_text_u64(&t, (uint64_t)(k < 0 ? errno : 0));
            fl_text_str(&t, ")");
            return -1;
        }
        src += k;
        off += (uint64_t)k;
        len -= (uint64_t)k;
    }
    return 0;
}

/* resident_limit: fetch chunk idx into this thread's bounce chunk and the
 * memfd; without a bounce slot (a thread outside hstats), through the fill
 * view, whose mapping is let go of after (each resident page counted once). */
static void fetch_resident(struct fl_region *r, struct sigsegv_state *s, struct fl_wctx *w, uint64_t idx, char *cause, size_t len)
{
    const uint64_t chunk = r->cfg.chunk_bytes, off = idx * chunk;
    /* hstats slot of this thread (none: a thread whose stats live elsewhere) */
    const uintptr_t at = (uintptr_t)(w->stats ? w->stats : r->hstats), first = (uintptr_t)r->hstats;
    const uint64_t slot = (at - first) / sizeof *r->hstats;
    if (fl_resident_admit(s->rs, idx, w->conn, cause, len))
        give_up(r, off, cause);
    if (at >= first && slot < FL_MAX_HANDLERS) {
        uint8_t *b = s->bounce + (uint64_t)slot * chunk;
        if (r->source->ops->read(w->conn, off, b, chunk, cause, len) || fill_memfd(s, off, b, chunk, cause, len))
            give_up(r, off, cause);
        return;
    }
    madvise(s->fill_view + off, chunk, MADV_POPULATE_WRITE); /* one call, not a fault per page while receiving */
    if (r->source->ops->read(w->conn, off, s->fill_view + off, chunk, cause, len))
        give_up(r, off, cause);
    madvise(s->fill_view + off, chunk, MADV_DONTNEED);
}

#define SPAN_BATCH 32 /* runs in flight per batch: bounded stack in a signal handler */

/* A miss on chunk idx (claimed by us): fetch it, or with vma_span > 1 every
 * absent chunk of its aligned span, pipelined on this thread's connection,
 * then open each run. Returns chunks installed. */
static uint64_t fetch_miss(struct fl_region *r, struct sigsegv_state *s, struct fl_wctx *w, struct fl_handler_stats *st, uint64_t idx)
{
    const uint64_t chunk = r->cfg.chunk_bytes, S = s->span;
    const struct fl_source_ops *src = r->source->ops;
    char cause[FL_ERR_LEN];
    uint64_t s0 = idx / S * S, s1 = s0 + S < r->nchunks ? s0 + S : r->nchunks, installed = 0;
    uint64_t t0 = fl_now();
    if (S <= 1) {
        if (s->rs)
            fetch_resident(r, s, w, idx, cause, sizeof cause);
        else if (src->read(w->conn, idx * chunk, s->fill_view + idx * chunk, chunk, cause, sizeof cause))
            give_up(r, idx * chunk, cause);
        uint64_t t1 = fl_now();
        if (open_chunks(r, s, idx, 1, cause, sizeof cause))
            give_up(r, idx * chunk, cause);
        uint64_t t2 = fl_now();
        fl_chunks_set(&s->chunks, idx, 1, FL_CHUNK_PRESENT);
        fl_samples_add(&st->fetch_ns, t1 - t0);
        fl_samples_add(&st->install_ns, t2 - t1);
        return 1;
    }
    uint64_t runs[SPAN_BATCH][2];
    uint64_t j = s0;
    while (j < s1) {
        int nr = 0;
        while (j < s1 && nr < SPAN_BATCH) {
            if (j != idx && !fl_chunk_take(&s->chunks, j, FL_CHUNK_ABSENT)) {
                j++;
                continue;
            }
            uint64_t a = j++;
            while (j < s1 && (j == idx || fl_chunk_take(&s->chunks, j, FL_CHUNK_ABSENT)))
                j++;
            runs[nr][0] = a;
            runs[nr][1] = j - a;
            if (src->send_read(w->conn, a * chunk, s->fill_view + a * chunk, (j - a) * chunk, cause, sizeof cause))
                give_up(r, a * chunk, cause);
            nr++;
        }
        for (int k = 0; k < nr; k++) {
            uint64_t a = runs[k][0], n = runs[k][1];
            if (src->recv_read(w->conn, a * chunk, s->fill_view + a * chunk, n * chunk, cause, sizeof cause) ||
                open_chunks(r, s, a, n, cause, sizeof cause))
                give_up(r, a * chunk, cause);
            fl_chunks_set(&s->chunks, a, n, FL_CHUNK_PRESENT);
            installed += n;
        }
    }
    fl_samples_add(&st->fetch_ns, fl_now() - t0); /* fetch and open together, for the span */
    st->span_chunks += installed - 1;
    return installed;
}

/* ---- resident_limit: faults on an installed chunk, and the resident set's hooks */

static int rs_open(void *arg, uint64_t idx, bool writable)
{
    struct fl_region *r = arg;
    return mprotect(r->base + idx * r->cfg.chunk_bytes, r->cfg.chunk_bytes, writable ? PROT_READ | PROT_WRITE : PROT_READ);
}
static int rs_open_rw(void *arg, uint64_t idx)
{
    return rs_open(arg, idx, true);
}
static int rs_protect(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    return mprotect(r->base + idx * r->cfg.chunk_bytes, r->cfg.chunk_bytes, PROT_NONE);
}
static void rs_reprotect(void *arg, uint64_t idx)
{
    if (rs_protect(arg, idx)) /* then the chunk stays open: its next access is not seen, nothing worse */
        return;
}
static const uint8_t *rs_bytes(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    return ((struct sigsegv_state *)r->strategy_state)->fill_view + idx * r->cfg.chunk_bytes;
}
static int rs_drop(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    struct sigsegv_state *s = r->strategy_state;
    const uint64_t chunk = r->cfg.chunk_bytes;
    return fallocate(s->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)(idx * chunk), (off_t)chunk);
}

/* A fault on an installed chunk: the clock hand closed it (reopen), or the
 * first write to a read-only one (mark it dirty, open it writable). The
 * handler is not told read from write, so a read that raced the chunk's
 * opening is taken for a write: one write-back too many, never one missing. */
static void resident_fault(struct fl_region *r, struct sigsegv_state *s, uint64_t idx)
{
    int rc = fl_resident_reopen(s->rs, idx, rs_open, r);
    if (!rc && !fl_resident_dirty(s->rs, idx))
        rc = fl_resident_mark_dirty(s->rs, idx, rs_open_rw, r);
    if (rc < 0)
        give_up(r, idx * r->cfg.chunk_bytes, "mprotect failed reopening a resident chunk");
    /* 0: it changed meanwhile; the access retries and faults again if it must */
}

static void on_fault(void *arg, uintptr_t addr)
{
    struct fl_region *r = arg;
    struct sigsegv_state *s = r->strategy_state;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint64_t idx = (addr - (uintptr_t)r->base) / chunk, off = idx * chunk;
    struct fl_wctx *w = fl_tls_wctx;
    struct fl_handler_stats *st = w && w->r == r && w->stats ? w->stats : &r->hstats[0];
    char cause[FL_ERR_LEN];

    for (;;) {
        uint8_t c = fl_chunk_get(&s->chunks, idx);
        if (c == FL_CHUNK_ABSENT) {
            if (!fl_chunk_take(&s->chunks, idx, FL_CHUNK_ABSENT))
                continue;
            if (!w || w->r != r)
                give_up(r, off, "fault from a thread with no source connection");
            if (s->pf)
                fl_pf_hint_fault(s->pf, idx); /* the window goes out while we fetch */
            uint64_t n = fetch_miss(r, s, w, st, idx);
            st->faults += n;
            st->bytes_fetched += n * chunk;
            return;
        }
        if (c == FL_CHUNK_STAGED) {
            /* A prefetched chunk held back as a trigger: open it, tell the engine. */
            if (!fl_chunk_move(&s->chunks, idx, FL_CHUNK_STAGED, FL_CHUNK_CLAIMED))
                continue;
            atomic_store(&s->staged_one, false);
            uint64_t t0 = fl_now();
            if (open_chunks(r, s, idx, 1, cause, sizeof cause))
                give_up(r, off, cause);
            fl_chunks_set(&s->chunks, idx, 1, FL_CHUNK_PRESENT);
            fl_samples_add(&st->install_ns, fl_now() - t0);
            st->trigger_faults++;
            fl_pf_hint_trigger(s->pf, idx);
            return;
        }
        if (c == FL_CHUNK_BUSY) { /* being evicted or marked: look again once it is done */
            fl_resident_wait(s->rs, idx);
            if (atomic_load(&r->failed)) /* an eviction that failed leaves its chunk busy */
                give_up(r, off, "run already failed");
            continue;
        }
        if (c == FL_CHUNK_PRESENT && s->rs) {
            resident_fault(r, s, idx);
            return;
        }
        if (c == FL_CHUNK_CLAIMED && !fl_chunk_move(&s->chunks, idx, FL_CHUNK_CLAIMED, FL_CHUNK_WANTED))
            continue;
        if (c == FL_CHUNK_CLAIMED || c == FL_CHUNK_WANTED) {
            /* Another thread or the prefetcher is installing it: wait, then retry the access. */
            st->inflight_waits++;
            if (!fl_chunk_wait(&s->chunks, idx, &r->failed))
                give_up(r, off, "run already failed");
        }
        return; /* PRESENT: opened between the fault and now */
    }
}

/* ---- the prefetch engine's view of this strategy ----------------------------- */

static uint8_t *pf_landing(void *arg, uint64_t idx, uint64_t n)
{
    struct fl_region *r = arg;
    (void)n;
    return ((struct sigsegv_state *)r->strategy_state)->fill_view + idx * r->cfg.chunk_bytes;
}

/* Without a resident limit answers land in the fill view (pf_landing); with
 * one, in an engine buffer, from which pwrite puts them in the memfd. */
static int pf_install(void *arg, uint64_t idx, uint64_t n, const uint8_t *src, char *cause, size_t len)
{
    struct fl_region *r = arg;
    struct sigsegv_state *s = r->strategy_state;
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (s->rs && fill_memfd(s, idx * chunk, src, n * chunk, cause, len))
        return -1;
    return open_chunks(r, s, idx, n, cause, len);
}

static bool pf_stage(void *arg, uint64_t idx, const uint8_t *src)
{
    struct fl_region *r = arg;
    struct sigsegv_state *s = r->strategy_state;
    char cause[FL_ERR_LEN];
    if (!s->rs)
        return true; /* the bytes wait in the fill view; the fault only opens them */
    if (atomic_exchange(&s->staged_one, true))
        return false;
    if (!fill_memfd(s, idx * r->cfg.chunk_bytes, src, r->cfg.chunk_bytes, cause, sizeof cause))
        return true; /* the bytes wait in the memfd */
    atomic_store(&s->staged_one, false);
    return false; /* installed the usual way, which reports the failure */
}

static void pf_unstage(void *arg, uint64_t idx)
{
    struct fl_region *r = arg;
    (void)idx;
    atomic_store(&((struct sigsegv_state *)r->strategy_state)->staged_one, false);
}

/* vma_span=auto: the smallest power-of-two span whose worst case (every other
 * span open: one VMA per span) fits what vm.max_map_count leaves this process. */
static uint64_t auto_span(const struct fl_region *r, long max_maps)
{
    long used = 0;
    FILE *f = fopen("/proc/self/maps", "re");
    if (f) {
        int ch;
        while ((ch = getc(f)) != EOF)
            used += ch == '\n';
        fclose(f);
    }
    long budget = max_maps - used - 2048; /* room for the process's own mappings to grow */
    if (budget < 1024)
        budget = 1024;
    uint64_t S = 1;
    while (r->nchunks / S + 2 > (uint64_t)budget)
        S *= 2;
    return S;
}

static long read_max_map_count(void)
{
    long v = 65530; /* the kernel's default */
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static void sigsegv_destroy(struct fl_region *r)
{
    struct sigsegv_state *s = r->strategy_state;
    if (!s)
        return;
    fl_pf_destroy(s->pf); /* first: it installs into the views */
    r->pf = NULL;
    r->chunks = NULL;
    fl_resident_destroy(s->rs);
    r->resident = NULL;
    if (s->owned)
        fl_sigsegv_disown(r->base);
    if (r->base)
        munmap(r->base, r->cfg.region_bytes);
    if (s->fill_view)
        munmap(s->fill_view, r->cfg.region_bytes);
    if (s->bounce)
        munmap(s->bounce, (uint64_t)FL_MAX_HANDLERS * r->cfg.chunk_bytes);
    fl_chunks_free(&s->chunks);
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
    s->memfd = -1; /* a failure before memfd_create must not close fd 0 */
    r->strategy_state = s;
    const uint64_t len = r->cfg.region_bytes;
    const bool hugetlb = !strcmp(r->cfg.huge, "hugetlb");
    if (hugetlb && (r->cfg.chunk_bytes % (2u << 20) || len % (2u << 20))) {
        fl_errf(err, errlen, "huge=hugetlb needs chunk and region multiples of 2 MiB (the huge page size)");
        goto fail;
    }
    /* A region larger than memory is never populated: its pages come and go with its chunks. */
    const int populate = r->cfg.resident_limit ? 0 : MAP_POPULATE;
    if (r->cfg.resident_limit && (r->cfg.vma_span != 1 || strcmp(r->cfg.huge, "none"))) {
        fl_errf(err, errlen, "resident_limit works with vma_span=1 and huge=none (chunks evicted one by one)");
        goto fail;
    }
    s->memfd = memfd_create("faultlab-sigsegv", MFD_CLOEXEC | (hugetlb ? MFD_HUGETLB : 0));
    if (s->memfd < 0 || ftruncate(s->memfd, (off_t)len)) {
        fl_errf(err, errlen, "memfd of %llu bytes: %s", (unsigned long long)len, strerror(errno));
        goto fail;
    }
    void *fill = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | populate, s->memfd, 0);
    /* The region's view gets its page-table entries now, then loses all access:
     * opening a chunk (mprotect) turns its entries back on, so the application's
     * access after the handler returns takes no second, minor fault to map the
     * page (`faultlab targets floors` measures the difference; a 1 MiB chunk
     * saves its 16 fault-arounds). app_minor_faults shows it. Set-up pays
     * instead, outside the timed window. */
    void *view = fill == MAP_FAILED ? MAP_FAILED : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | populate, s->memfd, 0);
    if (view != MAP_FAILED && mprotect(view, len, PROT_NONE)) {
        int e = errno;
        munmap(view, len);
        view = MAP_FAILED;
        errno = e;
    }
    r->base = view == MAP_FAILED ? NULL : view;
    s->fill_view = fill == MAP_FAILED ? NULL : fill;
    if (!r->base || !s->fill_view || fl_chunks_init(&s->chunks, r->nchunks)) {
        if (hugetlb)
            fl_errf(err, errlen, "huge=hugetlb: cannot map %llu bytes of huge pages (%s): reserve them with sysctl vm.nr_hugepages",
                    (unsigned long long)len, strerror(errno));
        else
            fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)len, strerror(errno));
        goto fail;
    }
    /* Shared-memory THP also needs /sys/kernel/mm/transparent_hugepage/shmem_enabled. */
    if (!strcmp(r->cfg.huge, "thp") && (madvise(s->fill_view, len, MADV_HUGEPAGE) || madvise(r->base, len, MADV_HUGEPAGE))) {
        fl_errf(err, errlen, "huge=thp: madvise(MADV_HUGEPAGE): %s", strerror(errno));
        goto fail;
    }
    s->max_map_count = read_max_map_count();
    s->span = r->cfg.vma_span ? (uint64_t)r->cfg.vma_span : auto_span(r, s->max_map_count);
    r->nhstats = 1; /* faults are served by the faulting (workload) thread */
    if (fl_samples_init(&r->hstats[0].fetch_ns, r->nchunks) || fl_samples_init(&r->hstats[0].install_ns, r->nchunks)) {
        fl_errf(err, errlen, "out of memory for statistics");
        goto fail;
    }
    const struct fl_resident_hooks rh = {.arg = r, .protect = rs_protect, .bytes = rs_bytes, .drop = rs_drop, .reprotect = rs_reprotect};
    if (fl_resident_create(r, &s->chunks, &rh, fl_resident_min_chunks(r), &s->rs, err, errlen))
        goto fail;
    r->resident = s->rs;
    if (s->rs) {
        void *b = mmap(NULL, (uint64_t)FL_MAX_HANDLERS * r->cfg.chunk_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (b == MAP_FAILED) {
            fl_errf(err, errlen, "out of memory for resident_limit's fetch buffers");
            goto fail;
        }
        s->bounce = b;
    }
    if (fl_sigsegv_own(r->base, len, on_fault, r, err, errlen))
        goto fail;
    s->owned = true;
    /* The prefetch thread has its own connection: it never shares the
     * workload threads' (a signal handler may be using one). */
    struct fl_pf_target t = {.arg = r,
                             .landing = s->rs ? NULL : pf_landing,
                             .install = pf_install,
                             .stage = pf_stage,
                             .unstage = pf_unstage,
                             .install_copies = s->rs != NULL};
    if (fl_pf_start(r, &s->chunks, &t, &s->pf, err, errlen))
        goto fail;
    r->chunks = &s->chunks;
    r->pf = s->pf;
    r->vma_span = s->span;
    return 0;
fail:
    sigsegv_destroy(r);
    return -1;
}

static void sigsegv_after(struct fl_region *r)
{
    /* A failed run (the VMA limit, say) closes the whole region again at once:
     * mprotect merges its split mappings back into one, so the process gets its
     * mappings back before anything else needs one. */
    if (atomic_load(&r->failed) && mprotect(r->base, r->cfg.region_bytes, PROT_NONE))
        fl_region_fail(r, "sigsegv: could not close the region after a failure");
}

static void sigsegv_quiesce(struct fl_region *r)
{
    struct sigsegv_state *s = r->strategy_state;
    fl_pf_stop(s->pf);
}

/* Faults are served on the application's threads: only the engine is its own. */
static uint64_t sigsegv_helpers_cpu_ns(struct fl_region *r)
{
    return fl_pf_cpu_ns(((struct sigsegv_state *)r->strategy_state)->pf);
}

const struct fl_strategy_ops fl_strategy_sigsegv = {
    .name = "sigsegv",
    .lazy = true,
    .create = sigsegv_create,
    .after_workload = sigsegv_after,
    .quiesce = sigsegv_quiesce,
    .helpers_cpu_ns = sigsegv_helpers_cpu_ns,
    .destroy = sigsegv_destroy,
};
