/* Native tests of the bounded resident set (issue 19, resident_limit): the
 * eviction policies' order, the limit never exceeded, dirty chunks written
 * back before they are dropped and read back equal (through NBD WRITEs to
 * faultlab's server), prefetch inside the limit, and no write lost to an
 * eviction racing it. */
#include "../include/faultlab.h"
#include "../src/core/internal.h"
#include "../src/core/resident.h"
#include "../src/evict/evict.h"
#include "unit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "run_json.h"

/* ---- the policies alone ------------------------------------------------------ */

static uint64_t skip_this = UINT64_MAX, chances[16];
static int nchances;
static enum fl_evict_verdict offer_all(void *arg, uint64_t idx)
{
    (void)arg;
    return idx == skip_this ? FL_EVICT_SKIP : FL_EVICT_TAKE;
}
static void note_chance(void *arg, uint64_t idx)
{
    (void)arg;
    if (nchances < 16)
        chances[nchances++] = idx;
}
static uint64_t pick(struct fl_evict *e)
{
    uint64_t v = UINT64_MAX;
    if (!e->ops->pick(e, offer_all, note_chance, NULL, &v))
        return UINT64_MAX;
    return v;
}

static void fifo_order(void)
{
    struct fl_evict e = {.ops = &fl_evict_fifo};
    CHECK(!e.ops->init(&e, 4, 100), "init");
    for (uint64_t i = 10; i < 14; i++)
        e.ops->insert(&e, i);
    e.ops->touch(&e, 10); /* FIFO ignores use */
    CHECK(pick(&e) == 10, "the oldest goes first, touched or not");
    skip_this = 11; /* in flight: not takeable now */
    CHECK(pick(&e) == 12, "a chunk still in flight is passed over");
    skip_this = UINT64_MAX;
    CHECK(pick(&e) == 13, "then the next oldest");
    CHECK(pick(&e) == 11, "the passed-over one comes round again");
    CHECK(pick(&e) == UINT64_MAX, "an empty policy has no victim");
    e.ops->destroy(&e);
}

static void clock_second_chance(void)
{
    struct fl_evict e = {.ops = &fl_evict_clock};
    CHECK(!e.ops->init(&e, 4, 100), "init");
    nchances = 0;
    for (uint64_t i = 1; i <= 3; i++)
        e.ops->insert(&e, i); /* inserted referenced: its fetch */
    CHECK(pick(&e) == 1, "all referenced: the hand clears every bit, then takes the oldest");
    CHECK(nchances == 3, "each got its second chance (%d)", nchances);
    e.ops->touch(&e, 2);
    nchances = 0;
    CHECK(pick(&e) == 3, "a chunk referenced since the hand passed (2) is skipped once");
    CHECK(nchances == 1 && chances[0] == 2, "and its second chance was given to 2");
    CHECK(pick(&e) == 2, "then it goes too");
    e.ops->destroy(&e);
}

/* ---- whole runs -------------------------------------------------------------- */

static const char *const strategies[] = {"uffd", "sigsegv"};
static const char *const policies[] = {"fifo", "clock"};

static void limit_never_exceeded(void)
{
    const long long limit = 1 << 20, region = 4 << 20, chunk = 4096;
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 2; p++)
            for (int w = 0; w < 3; w++) {
                static const char *const wl[] = {"read-seq", "read-random", "read-zipf"};
                char spec[256], rspec[64];
                snprintf(spec, sizeof spec, "strategy=%s region=%lld chunk=%lld resident_limit=%lld evict=%s", strategies[s], region, chunk,
                         limit, policies[p]);
                snprintf(rspec, sizeof rspec, "workload=%s", wl[w]);
                int rc = run(spec, rspec);
                CHECK(rc == 0 && jtrue(out, "verified"), "%s %s %s verified: %.200s", strategies[s], policies[p], wl[w], out);
                long long mx = jnum(out, "max_resident_bytes"), ev = jnum(out, "evictions");
                CHECK(mx > 0 && mx <= limit, "%s %s %s: max_resident_bytes %lld <= %lld", strategies[s], policies[p], wl[w], mx, limit);
                CHECK(jnum(out, "resident_limit") == limit, "resident_limit reported");
                if (w == 0) /* every chunk once, in order: exactly the chunks past the limit go */
                    CHECK(ev == (region - limit) / chunk && jnum(out, "refetches") == 0, "%s %s read-seq: %lld evictions, %lld refetches",
                          strategies[s], policies[p], ev, jnum(out, "refetches"));
                else /* each chunk touched past the limit pushes one out at least */
                    CHECK(ev >= jnum(out, "unique_chunks") - limit / chunk, "%s %s %s: %lld evictions, %lld chunks touched", strategies[s],
                          policies[p], wl[w], ev, jnum(out, "unique_chunks"));
                CHECK(jnum(out, "writebacks") == 0, "reads write nothing back");
            }
}

/* write-random through faultlab's NBD server: half the chunks are written,
 * evicted (written back) and fetched again; the second pass and the server's
 * contents must both hold the writes. */
static void dirty_written_back(void)
{
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 2; p++) {
            char err[256] = "", spec[256], st[4096];
            /* A fresh server each time: the first pass expects the unwritten contents. */
            fl_nbd_server *srv = fl_nbd_start("region=4MiB seed=3 log_fd=-1", err, sizeof err);
            CHECK(srv != NULL, "server: %s", err);
            if (!srv)
                return;
            snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=4MiB seed=3 resident_limit=1MiB evict=%s", strategies[s],
                     fl_nbd_port(srv), policies[p]);
            int rc = run(spec, "workload=write-random seed=3");
            CHECK(rc == 0 && jtrue(out, "verified") && jtrue(out, "source_verified"), "%s %s: written chunks read back equal: %.300s",
                  strategies[s], policies[p], out);
            CHECK(jnum(out, "writebacks") > 0 && jnum(out, "refetches") > 0, "%s %s: %lld writebacks, %lld refetches", strategies[s],
                  policies[p], jnum(out, "writebacks"), jnum(out, "refetches"));
            CHECK(jnum(out, "max_resident_bytes") <= 1 << 20, "limit kept while writing");
            CHECK(!fl_nbd_stats(srv, st, sizeof st) && jnum(st, "writes") > 0, "the server received WRITEs: %.200s", st);
            fl_nbd_stop(srv);
        }
}

/* A write-back the server refuses (its store full: NBD_ENOSPC) fails the
 * run with the cause, and nothing hangs: faults on the chunk left busy give up. */
static void refused_writeback_fails(void)
{
    for (int s = 0; s < 2; s++) {
        char err[256] = "", spec[256];
        fl_nbd_server *srv = fl_nbd_start("region=4MiB seed=5 store_cap=64KiB log_fd=-1", err, sizeof err);
        CHECK(srv != NULL, "server: %s", err);
        if (!srv)
            return;
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=4MiB seed=5 resident_limit=1MiB fetch_timeout_ms=2000",
                 strategies[s], fl_nbd_port(srv));
        int rc = run(spec, "workload=write-random seed=5");
        CHECK(rc != 0 && strstr(out, "ENOSPC"), "%s: the refused write-back fails the run, cause named: %.300s", strategies[s], out);
        fl_nbd_stop(srv);
    }
}

/* The check of the server's contents must be able to fail: a chunk changed
 * on the server behind the run's back is caught. */
static void lost_writes_caught(void)
{
    char err[256] = "", spec[256];
    fl_nbd_server *srv = fl_nbd_start("region=1MiB seed=4 log_fd=-1", err, sizeof err);
    CHECK(srv != NULL, "server: %s", err);
    if (!srv)
        return;
    struct fl_region *r;
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB seed=4 resident_limit=256KiB", fl_nbd_port(srv));
    r = fl_region_create(spec, err, sizeof err);
    CHECK(r != NULL, "create: %s", err);
    if (r) {
        struct fl_conn *c;
        uint8_t junk[4096];
        memset(junk, 0xab, sizeof junk);
        CHECK(!r->source->ops->connect(r->source, &c, err, sizeof err), "connect");
        CHECK(!r->source->ops->write(c, 0, junk, sizeof junk, err, sizeof err), "corrupt chunk 0 on the server");
        r->source->ops->disconnect(c);
        int rc = fl_run(r, "workload=write-random seed=4", out, sizeof out);
        CHECK(rc == 0 && !jtrue(out, "verified"), "a wrong chunk on the server fails verification: %.300s", out);
        fl_region_destroy(r);
    }
    fl_nbd_stop(srv);
}

static void prefetch_respects_limit(void)
{
    for (int s = 0; s < 2; s++)
        for (int p = 0; p < 2; p++) {
            char spec[256];
            snprintf(spec, sizeof spec, "strategy=%s region=16MiB chunk=64KiB resident_limit=4MiB evict=%s prefetch=ahead:8 depth=2",
                     strategies[s], policies[p]);
            int rc = run(spec, "workload=read-seq");
            CHECK(rc == 0 && jtrue(out, "verified"), "%s %s: %.200s", strategies[s], policies[p], out);
            CHECK(jnum(out, "prefetched") > 0, "%s %s: prefetched %lld", strategies[s], policies[p], jnum(out, "prefetched"));
            CHECK(jnum(out, "max_resident_bytes") <= 4 << 20, "%s %s: max_resident_bytes %lld <= 4 MiB", strategies[s], policies[p],
                  jnum(out, "max_resident_bytes"));
            rc = run(spec, "workload=write-random");
            CHECK(rc == 0 && jtrue(out, "verified"), "%s %s write-random with prefetch evicting beside it: %.200s", strategies[s],
                  policies[p], out);
        }
}

/* A writer keeps writing a few hot chunks while a reader streams the whole
 * region, so the hot chunks are evicted again and again under the writer's
 * feet. The last value written to each must be in memory and, after the
 * flush, in the source. uffd serves any thread; sigsegv serves a thread
 * through its own connection (fl_tls_wctx), as the workload threads have.
 * FIFO, so the hot chunks are evicted however often they are written (clock
 * would rightly keep them, and test nothing). */
struct race {
    struct fl_region *r;
    atomic_int stop;
    uint64_t rounds;
};
#define HOT 8
static int race_thread_ctx(struct fl_region *r, struct fl_wctx *w)
{
    char err[256] = "";
    memset(w, 0, sizeof *w);
    w->r = r;
    if (r->source->ops->connect(r->source, &w->conn, err, sizeof err))
        return -1;
    fl_tls_wctx = w;
    return 0;
}
static void *writer_main(void *arg)
{
    struct race *x = arg;
    struct fl_wctx w;
    if (race_thread_ctx(x->r, &w))
        return NULL;
    uint64_t k = 0;
    while (!atomic_load(&x->stop) || k < 2000) {
        k++;
        for (int h = 0; h < HOT; h++)
            __atomic_store_n((uint64_t *)(x->r->base + (uint64_t)h * 64 * 4096), k, __ATOMIC_RELAXED);
    }
    x->rounds = k;
    fl_tls_wctx = NULL;
    x->r->source->ops->disconnect(w.conn);
    return NULL;
}
static void eviction_races_writes_on(const char *strategy)
{
    char err[256] = "", spec[256];
    struct race x = {0};
    struct fl_wctx reader;
    snprintf(spec, sizeof spec, "%s region=8MiB chunk=4KiB resident_limit=512KiB evict=fifo cpus=free", strategy);
    x.r = fl_region_create(spec, err, sizeof err);
    CHECK(x.r != NULL, "%s: create: %s", strategy, err);
    if (!x.r)
        return;
    if (race_thread_ctx(x.r, &reader)) {
        CHECK(0, "%s: reader connection", strategy);
        fl_region_destroy(x.r);
        return;
    }
    pthread_t t;
    pthread_create(&t, NULL, writer_main, &x);
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 6; pass++)
        for (uint64_t off = 0; off < x.r->cfg.region_bytes; off += 4096)
            sink += *(volatile uint64_t *)(x.r->base + off + 8);
    atomic_store(&x.stop, 1);
    pthread_join(t, NULL);
    (void)sink;
    struct fl_resident_counts c;
    fl_resident_counts(x.r->resident, &c);
    CHECK(c.evictions > 0 && c.writebacks > 0, "%s: hot chunks were evicted while written: %llu evictions, %llu writebacks", strategy,
          (unsigned long long)c.evictions, (unsigned long long)c.writebacks);
    CHECK(c.max_resident_bytes <= 512 << 10, "%s: limit kept: %llu", strategy, (unsigned long long)c.max_resident_bytes);
    char cause[256] = "";
    CHECK(!fl_resident_flush(x.r->resident, cause, sizeof cause), "%s: flush: %s", strategy, cause);
    int lost = 0;
    for (int h = 0; h < HOT; h++) {
        uint64_t mem = *(volatile uint64_t *)(x.r->base + (uint64_t)h * 64 * 4096), src = 0;
        x.r->source->ops->read(reader.conn, (uint64_t)h * 64 * 4096, &src, 8, err, sizeof err);
        if (mem != x.rounds || src != x.rounds) {
            lost++;
            printf("    # hot chunk %d: memory %llu, source %llu, last written %llu\n", h, (unsigned long long)mem, (unsigned long long)src,
                   (unsigned long long)x.rounds);
        }
    }
    fl_tls_wctx = NULL;
    x.r->source->ops->disconnect(reader.conn);
    CHECK(!lost, "%s: every hot chunk holds the last of %llu writes, in memory and in the source (%d differ)", strategy,
          (unsigned long long)x.rounds, lost);
    fl_region_destroy(x.r);
}
static void eviction_races_writes(void)
{
    eviction_races_writes_on("strategy=uffd handler_threads=2");
    eviction_races_writes_on("strategy=sigsegv");
}

static void bad_limits_refused(void)
{
    run("strategy=uffd region=4MiB resident_limit=64KiB", "");
    CHECK(strstr(out, "create: resident_limit") && strstr(out, "raise it"), "too small: %s", out);
    run("strategy=sigsegv region=4MiB chunk=8KiB resident_limit=1028KiB", "");
    CHECK(strstr(out, "not a multiple of the chunk"), "not whole chunks: %s", out);
    run("strategy=memory resident_limit=1MiB", "");
    CHECK(strstr(out, "for uffd and sigsegv"), "memory refused: %s", out);
    run("strategy=uffd uffd_install=continue resident_limit=1MiB", "");
    CHECK(strstr(out, "uffd_install=copy"), "continue refused: %s", out);
    run("strategy=sigsegv vma_span=4 resident_limit=1MiB", "");
    CHECK(strstr(out, "vma_span=1"), "span refused: %s", out);
    run("strategy=uffd resident_limit=1MiB evict=lru", "");
    CHECK(strstr(out, "bad value for 'evict'"), "unknown policy refused: %s", out);
    run("strategy=sigsegv region=8MiB chunk=64KiB resident_limit=4MiB prefetch=background depth=1", "workload=read-seq wait_fill=1");
    CHECK(strstr(out, "wait_fill=1 waits for every chunk"), "wait_fill refused under a limit: %s", out);
    run("strategy=uffd region=1MiB resident_limit=512KiB", "workload=write-random app_threads=2");
    CHECK(strstr(out, "app_threads must be 1"), "write-random is one thread: %s", out);
}

static const struct unit_test tests[] = {
    {"fifo-order", 0, fifo_order},
    {"clock-second-chance", 0, clock_second_chance},
    {"limit-never-exceeded", NEED_UFFD, limit_never_exceeded},
    {"dirty-written-back-and-read-back", NEED_UFFD, dirty_written_back},
    {"lost-write-caught", NEED_UFFD, lost_writes_caught},
    {"refused-write-back-fails", NEED_UFFD, refused_writeback_fails},
    {"prefetch-respects-limit", NEED_UFFD, prefetch_respects_limit},
    {"eviction-races-writes", NEED_UFFD, eviction_races_writes},
    {"bad-limits-refused", 0, bad_limits_refused},
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
