/* Native tests of issue 6: prefetch policies (unit and end to end, local and
 * over TCP), pipelining, background fill, application threads, the new
 * workloads, chunk sizes, huge pages, and the sigsegv VMA limit with its
 * mitigation. Every run reads real bytes and verifies them. */
#include "../include/faultlab.h"
#include "../src/prefetch/prefetch.h"
#include "unit.h"
#include "test_server.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "run_json.h"

/* The chunk server of the remote cases, started by the first test that needs
 * it; stopped before a fork, so that the child is single-threaded. */
static struct tsrv shared;
static int shared_up;

static struct tsrv *shared_srv(void)
{
    if (!shared_up && ts_start(&shared, 4 << 20, 1, 0) == 0)
        shared_up = 1;
    if (!shared_up)
        CHECK(0, "cannot start the test chunk server");
    return shared_up ? &shared : NULL;
}

static void shared_srv_stop(void)
{
    if (shared_up)
        ts_stop(&shared);
    shared_up = 0;
}

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int ch;
    while (f && (ch = getc(f)) != EOF)
        n += ch == '\n';
    if (f)
        fclose(f);
    return n;
}

/* ---- policies on their own: deterministic windows ------------------------------ */
static void policy_windows(void)
{
    struct fl_pf_policy p;
    char err[256];
    CHECK(!fl_pf_policy_init(&p, "ahead:4", 100, 4096, err, sizeof err), "ahead:4 parses");
    p.ops->on_fault(&p, 10);
    CHECK(p.next == 11 && p.end == 15 && p.trigger == 11, "ahead:4 after a miss at 10 wants 11..14, trigger 11");
    p.next = 15;
    p.ops->on_trigger(&p, 11);
    CHECK(p.end == 19 && p.trigger == 15, "ahead:4 trigger reached: 15..18 follow, trigger 15 (end %llu)", (unsigned long long)p.end);
    p.ops->on_fault(&p, 98);
    CHECK(p.next == 99 && p.end == 100, "ahead:4 stops at the region end");

    CHECK(!fl_pf_policy_init(&p, "adaptive:64", 1000, 4096, err, sizeof err) && p.window == 16,
          "adaptive starts at 64 KiB (16 chunks of 4 KiB)");
    p.ops->on_fault(&p, 0);
    uint64_t w0 = p.window;
    p.ops->on_fault(&p, p.end); /* the reader ran off the window: sequential */
    uint64_t w1 = p.window;
    p.ops->on_trigger(&p, p.trigger);
    uint64_t w2 = p.window;
    p.ops->on_fault(&p, 900); /* a jump */
    CHECK(w1 == 2 * w0 && w2 == 2 * w1 && p.window == w2 / 4,
          "adaptive doubles while sequential, shrinks 4x on a jump (%llu %llu %llu %llu)", (unsigned long long)w0, (unsigned long long)w1,
          (unsigned long long)w2, (unsigned long long)p.window);
    for (int i = 0; i < 10; i++)
        p.ops->on_trigger(&p, p.trigger);
    CHECK(p.window == 64, "adaptive:64 never exceeds 64 chunks");

    CHECK(!fl_pf_policy_init(&p, "criu", 1 << 20, 4096, err, sizeof err) && p.max_depth == 1, "criu: one request at a time");
    uint64_t lens[4];
    for (int i = 0; i < 4; i++) {
        p.ops->refill(&p);
        lens[i] = p.end - p.next;
    }
    p.ops->on_fault(&p, 5);
    p.ops->refill(&p);
    CHECK(lens[0] == 16 && lens[1] == 32 && lens[2] == 48 && lens[3] == 64 && p.end - p.next == 16,
          "criu: 64 KiB, +64 KiB per request, back to 64 KiB after a fault");
    for (int i = 0; i < 100; i++)
        p.ops->refill(&p);
    CHECK(p.end - p.next == 1024, "criu: requests grow to 4 MiB at most");

    CHECK(!fl_pf_policy_init(&p, "background", 1000, 4096, err, sizeof err), "background parses");
    uint64_t covered = 0, runs = 0;
    while (p.ops->refill(&p)) {
        covered += p.end - p.next;
        runs++;
    }
    CHECK(covered == 1000 && runs == 4, "background covers the region in order, 1 MiB per request");

    const char *bad[][2] = {{"ahead", "needs N"},
                            {"ahead:0", "needs N"},
                            {"sideways", "unknown prefetch policy"},
                            {"none:3", "takes no argument"},
                            {"adaptive:x", "largest window"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(fl_pf_policy_init(&p, bad[i][0], 10, 4096, err, sizeof err) && strstr(err, bad[i][1]), "prefetch=%s is refused: %s",
              bad[i][0], err);
}

static const char *const policies[] = {"none", "ahead:8", "adaptive", "background", "criu"};
static const char *const lazy[] = {"uffd", "sigsegv"};

/* Every policy, both strategies, local and remote: verified, and every chunk fetched once. */
static void policies_read(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256];
    for (int src = 0; src < 2; src++)
        for (size_t s = 0; s < 2; s++)
            for (size_t p = 0; p < sizeof policies / sizeof *policies; p++)
                for (int w = 0; w < 2; w++) {
                    snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=4KiB prefetch=%s depth=8 cpus=free %s%d", lazy[s],
                             policies[p], src ? "fetch_timeout_ms=20000 source=tcp port=" : "source=local seed=", src ? srv->port : 1);
                    int rc = run(spec, w ? "workload=read-random seed=3" : "workload=read-seq");
                    long long f = jnum(out, "faults"), pf = jnum(out, "prefetched");
                    CHECK(rc == 0 && jtrue(out, "verified") && f + pf == 1024 && jnum(out, "bytes_fetched") == 4 << 20,
                          "%s prefetch=%s %s %s: verified, faults %lld + prefetched %lld == 1024 chunks %s", lazy[s], policies[p],
                          src ? "remote" : "local", w ? "read-random" : "read-seq", f, pf, rc ? out : "");
                    if (p && !w && src) /* locally a miss is served before the engine wakes up */
                        CHECK(pf > 0, "%s prefetch=%s %s read-seq: the engine installed chunks (%lld)", lazy[s], policies[p],
                              src ? "remote" : "local", pf);
                }
}

/* background fills the whole region although the application reads one chunk. */
static void background_fill(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256];
    for (int src = 0; src < 2; src++)
        for (size_t s = 0; s < 2; s++)
            for (int c = 0; c < 2; c++) {
                snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=16KiB prefetch=%s %s%d", lazy[s], c ? "criu" : "background",
                         src ? "fetch_timeout_ms=20000 source=tcp port=" : "source=local seed=", src ? srv->port : 1);
                int rc = run(spec, "workload=first-chunk wait_fill=1");
                CHECK(rc == 0 && jtrue(out, "fill_verified") && jnum(out, "chunks_present") == 256 &&
                          jnum(out, "faults") + jnum(out, "prefetched") == 256 && jnum(out, "fill_ns") > 0,
                      "%s prefetch=%s %s: first-chunk, then the region fills by itself and verifies %s", lazy[s], c ? "criu" : "background",
                      src ? "remote" : "local", rc ? out : "");
            }
    int rc = run("strategy=uffd region=1MiB prefetch=ahead:4", "workload=read-seq wait_fill=1");
    CHECK(rc == -1 && strstr(out, "wait_fill=1 needs"), "wait_fill with a policy that does not fill is refused: %s", out);
}

/* Requests overlap: at 50 ms per request, 16 chunks serially take 800 ms and
 * more; pipelined, under half of that (a long RTT, so that CPU contention on a
 * 2-core machine cannot decide it). */
static void pipelining(void)
{
    struct tsrv slow;
    if (ts_start(&slow, 16 << 20, 1, 50)) {
        CHECK(0, "pipelining: cannot start the test server");
        return;
    }
    char spec[256];
    for (size_t s = 0; s < 2; s++) {
        /* Serial first, measured: a sanitizer's cost per copied byte is in both. */
        snprintf(spec, sizeof spec, "strategy=%s fetch_timeout_ms=20000 source=tcp port=%d region=16MiB chunk=1MiB cpus=free", lazy[s],
                 slow.port);
        int rc = run(spec, "workload=read-seq");
        double serial_ms = (double)jnum(out, "wall_ns") / 1e6; /* the accesses, not the connection set-up */
        CHECK(rc == 0 && jtrue(out, "verified") && serial_ms >= 800,
              "%s without prefetch at 50 ms RTT: 16 chunks one after another in %.0f ms", lazy[s], serial_ms);
        atomic_store(&slow.max_outstanding, 0);
        snprintf(spec, sizeof spec,
                 "strategy=%s fetch_timeout_ms=20000 source=tcp port=%d region=16MiB chunk=1MiB prefetch=background depth=16 pf_conns=1 "
                 "cpus=free",
                 lazy[s], slow.port);
        rc = run(spec, "workload=read-seq");
        double ms = (double)jnum(out, "wall_ns") / 1e6;
        CHECK(rc == 0 && jtrue(out, "verified") && atomic_load(&slow.max_outstanding) >= 8 && ms < serial_ms / 2,
              "%s background depth=16 at 50 ms RTT: 16 chunks in %.0f ms (serial: %.0f), up to %d requests in flight on one connection",
              lazy[s], ms, serial_ms, atomic_load(&slow.max_outstanding));
        atomic_store(&slow.max_outstanding, 0);
        snprintf(spec, sizeof spec,
                 "strategy=%s fetch_timeout_ms=20000 source=tcp port=%d region=16MiB chunk=1MiB prefetch=criu depth=16 cpus=free", lazy[s],
                 slow.port);
        rc = run(spec, "workload=first-chunk wait_fill=1");
        CHECK(rc == 0 && jtrue(out, "fill_verified") && atomic_load(&slow.max_outstanding) == 1,
              "%s criu keeps one request in flight (saw %d) and still fills the region", lazy[s], atomic_load(&slow.max_outstanding));
    }
    ts_stop(&slow);
}

static void app_threads(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256];
    const char *w[] = {"workload=read-seq app_threads=4", "workload=read-random app_threads=4 seed=5"};
    for (int src = 0; src < 2; src++)
        for (size_t s = 0; s < 2; s++)
            for (int k = 0; k < 2; k++)
                for (int p = 0; p < 2; p++) {
                    snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=4KiB handler_threads=2 cpus=free prefetch=%s %s%d", lazy[s],
                             p ? "ahead:8" : "none",
                             src ? "fetch_timeout_ms=20000 source=tcp port=" : "source=local seed=", src ? srv->port : 1);
                    int rc = run(spec, w[k]);
                    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "chunks_touched") == 1024 &&
                              jnum(out, "faults") + jnum(out, "prefetched") == 1024 && jnum(out, "app_threads") == 4,
                          "%s %s app_threads=4 prefetch=%s %s: verified, each chunk once %s", lazy[s], k ? "read-random" : "read-seq",
                          p ? "ahead:8" : "none", src ? "remote" : "local", rc ? out : "");
                }
    int rc = run("strategy=uffd region=64KiB", "workload=read-seq app_threads=32");
    CHECK(rc == -1 && strstr(out, "app_threads"), "app_threads above 16 is refused: %s", out);
    rc = run("strategy=uffd region=1MiB", "workload=first-chunk app_threads=2");
    CHECK(rc == -1 && strstr(out, "first-chunk is one access"), "first-chunk with 2 threads is refused");
}

static void workloads(void)
{
    char spec[128];
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=4KiB", lazy[s]);
        int rc = run(spec, "workload=read-zipf zipf_s=1.2 seed=9");
        long long u = jnum(out, "unique_chunks");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "chunks_touched") == 2048 && u > 0 && u < 1024 && jnum(out, "faults") == u,
              "%s read-zipf s=1.2: 2048 accesses verified, a hot set of %lld chunks faults once each", lazy[s], u);
        rc = run(spec, "workload=read-zipf zipf_s=0 seed=9");
        long long u0 = jnum(out, "unique_chunks");
        CHECK(rc == 0 && jtrue(out, "verified") && u0 > u, "%s read-zipf s=0 is uniform: more distinct chunks (%lld > %lld)", lazy[s], u0,
              u);
        rc = run(spec, "workload=read-sparse touch_fraction=0.1 seed=4");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "chunks_touched") == 205 && jnum(out, "faults") == 205,
              "%s read-sparse 0.1: 205 of 2048 chunks touched and fetched, verified", lazy[s]);
    }
    const char *bad[] = {"workload=read-sparse touch_fraction=0", "workload=read-zipf zipf_s=-1", "workload=read-sideways"};
    for (size_t i = 0; i < 3; i++) {
        int rc = run("strategy=uffd region=64KiB", bad[i]);
        CHECK(rc == -1 && strstr(out, "bad run option"), "'%s' is refused", bad[i]);
    }
}

/* 4 KiB .. 2 MiB chunks, with and without prefetch. */
static void chunk_sizes(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256];
    for (uint64_t c = 4096; c <= 2u << 20; c *= 4) {
        uint64_t cc = c > (1u << 20) ? 2u << 20 : c;
        for (size_t s = 0; s < 2; s++)
            for (int p = 0; p < 2; p++) {
                snprintf(spec, sizeof spec, "strategy=%s fetch_timeout_ms=20000 source=tcp port=%d region=4MiB chunk=%llu prefetch=%s",
                         lazy[s], srv->port, (unsigned long long)cc, p ? "ahead:4" : "none");
                int rc = run(spec, "workload=read-seq");
                CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "prefetched") == (long long)((4u << 20) / cc),
                      "%s remote chunk %llu KiB prefetch=%s: verified, %llu chunks %s", lazy[s], (unsigned long long)cc >> 10,
                      p ? "ahead:4" : "none", (unsigned long long)((4u << 20) / cc), rc ? out : "");
            }
        if (cc != c)
            break;
    }
}

/* uffd with UFFDIO_COPY holds back only the first page of a prefetched trigger
 * chunk (the rest is installed when it is staged): each chunk must still verify
 * whether its trigger page or its tail is touched first, with one or two app
 * threads racing the engine, installed by the installer thread (cpus=free) or
 * by the engine itself (cpus=same). Whether a chunk gets staged at all is a
 * race (the application may ask for it first), so the triggers are counted,
 * not required. */
static void staged_first_page(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256], how[64];
    long long triggers = 0;
    for (int c = 0; c < 2; c++)
        for (int w = 0; w < 2; w++)
            for (int t = 1; t <= 2; t++)
                for (int seed = 1; seed <= 3; seed++) {
                    snprintf(spec, sizeof spec,
                             "strategy=uffd fetch_timeout_ms=20000 source=tcp port=%d region=4MiB chunk=256KiB prefetch=ahead:2 cpus=%s",
                             srv->port, c ? "same" : "free");
                    snprintf(how, sizeof how, "workload=%s app_threads=%d seed=%d", w ? "read-random" : "read-seq", t, seed);
                    int rc = run(spec, how);
                    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "prefetched") == 16,
                          "uffd copy, 256 KiB chunks, ahead:2, cpus=%s, %s: verified, 16 chunks (trigger faults %lld) %s",
                          c ? "same" : "free", how, jnum(out, "trigger_faults"), rc ? out : "");
                    triggers += rc ? 0 : jnum(out, "trigger_faults");
                }
    printf("# uffd copy: %lld trigger faults on chunks staged with only their first page held back\n", triggers);
}

/* The engine hands UFFDIO_COPY to an installer thread only where the two can
 * run at once (cpus=free); pinned beside the engine (same, split) it installs
 * itself, and installs that only map (continue, sigsegv) never need one. */
static void installer_only_where_it_overlaps(void)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    const struct {
        const char *strategy, *cpus;
        int installer;
    } cases[] = {{"strategy=uffd", "free", 1},
                 {"strategy=uffd", "same", 0},
                 {"strategy=uffd", "split", 0},
                 {"strategy=uffd uffd_install=continue", "free", 0},
                 {"strategy=sigsegv", "free", 0}};
    char spec[256];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (!strcmp(cases[i].cpus, "split") && sysconf(_SC_NPROCESSORS_ONLN) < 2)
            continue; /* split needs two CPUs; the other cases still run */
        /* A 2 ms round trip gives the engine time to ask for the next chunks
         * before the application reaches them, also on a loaded machine (at
         * RTT 0 the application's own faults could claim every chunk first). */
        snprintf(spec, sizeof spec,
                 "%s fetch_timeout_ms=20000 source=tcp port=%d client_rtt_us=2000 region=4MiB chunk=256KiB prefetch=ahead:2 cpus=%s",
                 cases[i].strategy, srv->port, cases[i].cpus);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "prefetched") > 0 && jtrue(out, "pf_installer") == cases[i].installer,
              "%s cpus=%s: verified, prefetched (%lld chunks), %s installer thread %s", cases[i].strategy, cases[i].cpus,
              rc ? -1 : jnum(out, "prefetched"), cases[i].installer ? "an" : "no", rc ? out : "");
    }
}

static long hugepages_free(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long v = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "HugePages_Free: %ld", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

static void huge_thp_verifies(void)
{
    for (size_t s = 0; s < 2; s++) {
        char spec[128];
        snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=2MiB huge=thp", lazy[s]);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified"), "%s huge=thp (MADV_HUGEPAGE) with 2 MiB chunks verifies", lazy[s]);
    }
}

static long nr_hugepages(void)
{
    long v = -1;
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
    if (f && fscanf(f, "%ld", &v) != 1)
        v = -1;
    if (f)
        fclose(f);
    return v;
}

static int set_nr_hugepages(long v)
{
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "%ld\n", v) < 0;
    return fclose(f) || bad ? -1 : 0;
}

/* huge=hugetlb needs reserved huge pages (4 for the region; 8 asked, as
 * before). Where fewer are free, root reserves the shortfall for this test and
 * gives it back after; otherwise the test is a skip saying so. */
static void hugetlb_verifies(void)
{
    long free0 = hugepages_free(), nr0 = nr_hugepages();
    bool raised = false;
    if (free0 < 8) {
        if (geteuid() != 0) {
            unit_skip("vm.nr_hugepages: %ld huge pages free, 8 needed, and only root can reserve more", free0);
            return;
        }
        if (nr0 < 0 || set_nr_hugepages(nr0 + 8 - free0) || hugepages_free() < 8) {
            long got = hugepages_free();
            if (nr0 >= 0)
                set_nr_hugepages(nr0);
            unit_skip("vm.nr_hugepages: the kernel reserved only %ld of the 8 huge pages asked for", got);
            return;
        }
        raised = true;
    }
    for (size_t s = 0; s < 2; s++) {
        char spec[128];
        snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=2MiB huge=hugetlb", lazy[s]);
        long free_pages = hugepages_free();
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified"), "%s huge=hugetlb (%ld huge pages free) verifies %s", lazy[s], free_pages, rc ? out : "");
    }
    if (raised) {
        set_nr_hugepages(nr0);
        CHECK(nr_hugepages() == nr0, "vm.nr_hugepages given back: %ld", nr_hugepages());
    }
}

/* Without reserved huge pages the run must be refused naming vm.nr_hugepages. */
static void hugetlb_refused_without_pages(void)
{
    long free_pages = hugepages_free();
    if (free_pages > 0) {
        unit_skip("%ld huge pages are free on this host: the refusal cannot be shown", free_pages);
        return;
    }
    for (size_t s = 0; s < 2; s++) {
        char spec[128];
        snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=2MiB huge=hugetlb", lazy[s]);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == -1 && strstr(out, "nr_hugepages"), "%s huge=hugetlb with no huge page free (vm.nr_hugepages): refused clearly: %s",
              lazy[s], out);
    }
}

static void hugetlb_needs_2mib_chunks(void)
{
    for (size_t s = 0; s < 2; s++) {
        char spec[128];
        snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=64KiB huge=hugetlb", lazy[s]);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == -1 && strstr(out, "multiples of 2 MiB"), "%s huge=hugetlb with 64 KiB chunks is refused", lazy[s]);
    }
}

/* uffd_install=continue (a memfd, MINOR faults, UFFDIO_CONTINUE) and =move (a
 * populated anonymous mirror, UFFDIO_MOVE): every policy, local and remote. */
static void uffd_install_mode(const char *mode)
{
    struct tsrv *srv = shared_srv();
    if (!srv)
        return;
    char spec[256], want[64];
    snprintf(want, sizeof want, "\"uffd_install\":\"%s\"", mode);
    for (int src = 0; src < 2; src++)
        for (size_t p = 0; p < sizeof policies / sizeof *policies; p++) {
            snprintf(spec, sizeof spec, "strategy=uffd uffd_install=%s region=4MiB chunk=16KiB prefetch=%s depth=8 cpus=free %s%d", mode,
                     policies[p], src ? "fetch_timeout_ms=20000 source=tcp port=" : "source=local seed=", src ? srv->port : 1);
            int rc = run(spec, "workload=read-random seed=2");
            CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "prefetched") == 256 && strstr(out, want),
                  "uffd_install=%s prefetch=%s %s read-random: verified, every chunk once %s", mode, policies[p], src ? "remote" : "local",
                  rc ? out : "");
        }
    snprintf(spec, sizeof spec, "strategy=uffd uffd_install=%s region=4MiB chunk=4KiB handler_threads=2 cpus=free", mode);
    int rc = run(spec, "workload=read-seq app_threads=4");
    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") == 1024, "uffd_install=%s with 4 application threads verifies", mode);
    snprintf(spec, sizeof spec, "strategy=uffd uffd_install=%s region=4MiB chunk=16KiB prefetch=background", mode);
    rc = run(spec, "workload=first-chunk wait_fill=1");
    CHECK(rc == 0 && jtrue(out, "fill_verified") && jnum(out, "chunks_present") == 256, "uffd_install=%s background fills the region",
          mode);
    snprintf(spec, sizeof spec, "strategy=uffd uffd_install=%s region=1MiB corrupt=5000", mode);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && !jtrue(out, "verified") && jnum(out, "first_bad_offset") == 5000, "uffd_install=%s catches a corrupted source byte",
          mode);
}

static void uffd_install_continue(void)
{
    uffd_install_mode("continue");
}

/* Kernels before 6.8 have no UFFDIO_MOVE: there the run must be refused
 * saying so, which is checked, and the test is a skip. */
static int uffd_move_available(void)
{
    int rc = run("strategy=uffd uffd_install=move region=1MiB chunk=64KiB", "workload=read-seq");
    if (rc == -1 && strstr(out, "UFFD_FEATURE_MOVE")) {
        CHECK(strstr(out, "Linux 6.8"),
              "uffd_install=move on a kernel without UFFDIO_MOVE is refused clearly (only the refusal is tested here): %s", out);
        unit_skip("the kernel has no UFFDIO_MOVE (Linux 6.8 and later); only its clear refusal was checked");
        return 0;
    }
    CHECK(rc == 0 && jtrue(out, "verified"), "uffd_install=move: the kernel has UFFDIO_MOVE, a read verifies %s", rc ? out : "");
    return 1;
}

static void uffd_install_move(void)
{
    if (uffd_move_available())
        uffd_install_mode("move");
}

static void uffd_install_move_huge_pages(void)
{
    if (!uffd_move_available())
        return;
    int rc = run("strategy=uffd uffd_install=move region=8MiB chunk=256KiB huge=thp", "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "uffd_install=move into a huge=thp region verifies %s", rc ? out : "");
    rc = run("strategy=uffd uffd_install=move region=8MiB chunk=2MiB huge=hugetlb", "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "uffd_install=move") && strstr(out, "huge=none or thp"),
          "uffd_install=move with huge=hugetlb is refused clearly: %s", out);
}

/* ---- the VMA limit ---------------------------------------------------------------- */

#define MAX_MAP_COUNT  "/proc/sys/vm/max_map_count"
#define VMA_TEST_LIMIT 65530 /* the kernel's default */

static long read_max_map_count(void)
{
    long v = -1;
    FILE *f = fopen(MAX_MAP_COUNT, "re");
    if (!f || fscanf(f, "%ld", &v) != 1)
        v = -1;
    if (f)
        fclose(f);
    return v;
}

static int write_max_map_count(long v)
{
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", v);
    int fd = open(MAX_MAP_COUNT, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t k = write(fd, buf, (size_t)n);
    int e = errno;
    close(fd);
    errno = e;
    return k == n ? 0 : -1;
}

static void describe_status(int status, char *buf, size_t len)
{
    if (WIFEXITED(status))
        snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
    else
        snprintf(buf, len, "status 0x%x", status);
}

/* The VMA limit cases need vm.max_map_count near the kernel's default: 1 GiB
 * of 4 KiB chunks can split into 262144 mappings. Where the host raised it,
 * root lowers it for the body, which runs in a child so that the parent puts
 * the value back however the child ends. */
static void at_default_max_map_count(void (*body)(void))
{
    long orig = read_max_map_count();
    if (orig <= 0) {
        CHECK(0, "vma limit: cannot read " MAX_MAP_COUNT);
        return;
    }
    if (orig <= 200000) {
        body();
        return;
    }
    if (geteuid() != 0) {
        unit_skip("vm.max_map_count is %ld and only root can lower it", orig);
        return;
    }
    shared_srv_stop(); /* the child of a multi-threaded fork must not start threads (TSan dies) */
    /* A signal meant to end the test reaches the child; the parent holds it
     * until the host's value is back. */
    sigset_t hold, old;
    sigemptyset(&hold);
    sigaddset(&hold, SIGINT);
    sigaddset(&hold, SIGTERM);
    sigaddset(&hold, SIGHUP);
    sigaddset(&hold, SIGQUIT);
    sigprocmask(SIG_BLOCK, &hold, &old);
    if (write_max_map_count(VMA_TEST_LIMIT)) {
        int e = errno;
        sigprocmask(SIG_SETMASK, &old, NULL);
        unit_skip("vm.max_map_count is %ld and lowering it failed: %s", orig, strerror(e));
        return;
    }
    printf("# vm.max_map_count lowered from %ld to %d for this test, in a child process\n", orig, VMA_TEST_LIMIT);
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        sigprocmask(SIG_SETMASK, &old, NULL);
        body();
        fflush(stdout);
        _exit(unit_checks_failed || !unit_checks_run ? 1 : 0); /* no atexit: LeakSanitizer checks the parent */
    }
    int status = 0, fork_errno = errno;
    pid_t w = -1;
    if (pid > 0)
        while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
            ;
    int restore_failed = write_max_map_count(orig) ? errno : 0;
    long now = read_max_map_count();
    sigprocmask(SIG_SETMASK, &old, NULL);
    char how[64];
    if (pid < 0)
        snprintf(how, sizeof how, "fork: %s", strerror(fork_errno));
    else
        describe_status(status, how, sizeof how);
    CHECK(pid > 0 && w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
          "the checks above ran in a child at vm.max_map_count %d and passed (%s)", VMA_TEST_LIMIT, how);
    CHECK(!restore_failed && now == orig, "vm.max_map_count restored to %ld (now %ld%s%s)", orig, now, restore_failed ? ", write: " : "",
          restore_failed ? strerror(restore_failed) : "");
}

/* Random access over 1 GiB of 4 KiB chunks splits the sigsegv mapping past
 * vm.max_map_count: the run fails with that name and the process gets its
 * mappings back. The sanitizers map their shadow memory on demand and abort
 * the process themselves at the limit, so only the plain build can show it. */
static void vma_limit_fails_clearly_body(void)
{
    char err[512];
    fl_region *r = fl_region_create("strategy=sigsegv region=1GiB chunk=4KiB", err, sizeof err);
    int rc = r ? fl_run(r, "workload=read-random seed=1", out, sizeof out) : -1;
    long after = count_maps();
    CHECK(r && rc == -1 && strstr(out, "vm.max_map_count") && strstr(out, "ENOMEM"),
          "sigsegv read-random over 1 GiB of 4 KiB chunks fails clearly: %s", r ? out : err);
    CHECK(after < 2000, "after that failure the process holds %ld mappings again (the region merged back)", after);
    fl_region_destroy(r);
}

static void vma_limit_fails_clearly(void)
{
    at_default_max_map_count(vma_limit_fails_clearly_body);
}

/* vma_span=auto sizes its spans from the limit: the same region reads. */
static void vma_span_auto_fits_body(void)
{
    int rc = run("strategy=sigsegv region=1GiB chunk=4KiB vma_span=auto", "workload=read-random seed=1");
    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "vma_span") > 1 && jnum(out, "faults") == 262144,
          "vma_span=auto (span %lld chunks) reads the same region, verified %s", jnum(out, "vma_span"), rc ? out : "");
}

static void vma_span_auto_fits_under_the_limit(void)
{
    at_default_max_map_count(vma_span_auto_fits_body);
}

static void vma_span_auto_one_chunk_when_limit_far(void)
{
    int rc = run("strategy=sigsegv region=8MiB chunk=4KiB vma_span=auto", "workload=read-random");
    CHECK(rc == 0 && jnum(out, "vma_span") == 1 && jnum(out, "span_chunks") == 0,
          "vma_span=auto keeps one chunk per fault where the limit is far");
}

static void vma_span_fixed_fetches_whole_spans(void)
{
    int rc = run("strategy=sigsegv region=8MiB chunk=4KiB vma_span=16", "workload=read-sparse touch_fraction=0.05");
    CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "span_chunks") > 0 && jnum(out, "bytes_fetched") > 102 * 4096,
          "vma_span=16 on a sparse read fetches whole spans (%lld bytes for 102 chunks touched)", jnum(out, "bytes_fetched"));
}

static const struct unit_test tests[] = {
    {"policy-windows", 0, policy_windows},
    {"policies-read-every-chunk-once", NEED_UFFD, policies_read},
    {"background-fills-the-region", NEED_UFFD, background_fill},
    {"pipelining-overlaps-requests", NEED_UFFD, pipelining},
    {"app-threads-read-each-chunk-once", NEED_UFFD, app_threads},
    {"workloads-zipf-and-sparse", NEED_UFFD, workloads},
    {"chunk-sizes-4k-to-2m", NEED_UFFD, chunk_sizes},
    {"uffd-copy-staged-first-page", NEED_UFFD, staged_first_page},
    {"installer-thread-only-where-it-overlaps", NEED_UFFD, installer_only_where_it_overlaps},
    {"huge-thp-verifies", NEED_UFFD, huge_thp_verifies},
    {"hugetlb-verifies", NEED_UFFD, hugetlb_verifies},
    {"hugetlb-refused-without-pages", NEED_UFFD, hugetlb_refused_without_pages},
    {"hugetlb-needs-2mib-chunks", NEED_UFFD, hugetlb_needs_2mib_chunks},
    {"uffd-install-continue", NEED_UFFD, uffd_install_continue},
    {"uffd-install-move", NEED_UFFD, uffd_install_move},
    {"uffd-install-move-huge-pages", NEED_UFFD, uffd_install_move_huge_pages},
    {"sigsegv-vma-limit-fails-clearly", NEED_NO_SANITIZER, vma_limit_fails_clearly},
    {"vma-span-auto-fits-under-the-limit", 0, vma_span_auto_fits_under_the_limit},
    {"vma-span-auto-one-chunk-when-limit-far", 0, vma_span_auto_one_chunk_when_limit_far},
    {"vma-span-fixed-fetches-whole-spans", 0, vma_span_fixed_fetches_whole_spans},
};

int main(int argc, char **argv)
{
    int rc = unit_main(argc, argv, tests, UNIT_COUNT(tests));
    shared_srv_stop();
    return rc;
}
