/* Native tests of the dirty trackers and the write-track scenario: each
 * tracker reports exactly the chunks written (known sets, several intervals,
 * anonymous and shared memory, one- and multi-page chunks), loses nothing
 * while a writer thread runs concurrently with collects, write-track ends
 * verified for every tracker, and a write the tracker cannot see (through a
 * second mapping) is caught by the final comparison. Each scenario is one
 * test per tracker; a tracker the kernel cannot support must be refused with
 * its reason, and its tests then skip with that reason. */
#define _GNU_SOURCE
#include "../include/faultlab.h"
#include "../src/trackers/tracker.h"
#include "unit.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "run_json.h"

static int jis(const char *json, const char *key, const char *v)
{
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":%s", key, v);
    return strstr(json, pat) != NULL;
}

/* A tracker the kernel lacks: is it refused with its reason? (soft-dirty here.) */
static int refused_for_kernel(const char *name, const char *err)
{
    return (!strcmp(name, "soft-dirty") && strstr(err, "soft-dirty unsupported by this kernel (CONFIG_MEM_SOFT_DIRTY)")) ||
           (!strcmp(name, "uffd-wp-async") && strstr(err, "needs WP_ASYNC"));
}

static uint8_t *map_region(uint64_t len, bool shared, int *fd)
{
    void *p;
    *fd = -1;
    if (shared) {
        *fd = memfd_create("tracker-test", MFD_CLOEXEC);
        if (*fd < 0 || ftruncate(*fd, (off_t)len))
            return NULL;
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    } else {
        p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    }
    if (p == MAP_FAILED)
        return NULL;
    madvise(p, len, MADV_NOHUGEPAGE);
    fl_fill(p, len, 3, 0);
    return p;
}

/* Write one byte in each listed chunk at a position that varies (first byte,
 * last byte, a middle page), collect, and compare the sets. */
static int interval(struct fl_tracker *t, const uint64_t *set, int n, uint64_t *idx, char *why, size_t whylen)
{
    for (int i = 0; i < n; i++) {
        uint64_t pos = i % 3 == 0 ? 0 : i % 3 == 1 ? t->chunk - 1 : t->chunk / 2 + 5;
        ((volatile uint8_t *)t->base)[set[i] * t->chunk + pos] ^= 0x5a;
    }
    uint64_t got = 0;
    char err[200];
    if (fl_tracker_collect(t, idx, &got, err, sizeof err)) {
        snprintf(why, whylen, "collect failed: %s", err);
        return 0;
    }
    bool none = !strcmp(t->ops->name, "none");
    uint64_t want = none ? t->nchunks : (uint64_t)n;
    if (got != want) {
        snprintf(why, whylen, "%llu chunks reported, %llu written", (unsigned long long)got, (unsigned long long)want);
        return 0;
    }
    for (uint64_t i = 0; i < got; i++) {
        uint64_t expect = none ? i : set[i];
        if (idx[i] != expect) {
            snprintf(why, whylen, "reported chunk %llu where %llu was written", (unsigned long long)idx[i], (unsigned long long)expect);
            return 0;
        }
    }
    snprintf(why, whylen, "exact");
    return 1;
}

/* 0 when the tracker could not be created: refused for this kernel (a skip)
 * or for another reason (a failed check); the test stops there. */
static int exact_sets(const char *name, uint64_t chunk, bool shared)
{
    const uint64_t len = 4 << 20, n = len / chunk;
    int fd;
    uint8_t *base = map_region(len, shared, &fd);
    uint64_t *idx = malloc(n * sizeof *idx);
    char err[256] = "", why[256];
    const char *kind = shared ? "shared memfd" : "anonymous";
    int ran = 0;
    struct fl_tracker *t = base && idx ? fl_tracker_create(name, base, len, chunk, shared, 0, err, sizeof err) : NULL;
    if (!t) {
        /* Refused for the right reason: nothing to measure, a skip; for any other reason, a failure. */
        int refused = refused_for_kernel(name, err);
        CHECK(refused, "%s (%s, %llu KiB chunks): unsupported by this kernel, refused at create: %s", name, kind,
              (unsigned long long)chunk >> 10, err);
        if (refused)
            unit_skip("%s refused by this kernel: %s", name, err);
        goto out;
    }
    ran = 1;
    /* Sorted sets; the second overlaps the first; the third is empty. */
    const uint64_t a[] = {0, 3, 4, 5, 100, n - 1}, b[] = {3, 7, 200, n - 2}, c[] = {50};
    int ok1 = interval(t, a, 6, idx, why, sizeof why);
    CHECK(ok1, "%s (%s, %llu KiB chunks): interval 1 reports exactly the 6 chunks written (%s)", name, kind,
          (unsigned long long)chunk >> 10, why);
    int ok2 = interval(t, b, 4, idx, why, sizeof why);
    CHECK(ok2, "%s (%s, %llu KiB chunks): re-armed, interval 2 reports exactly its 4 chunks (%s)", name, kind,
          (unsigned long long)chunk >> 10, why);
    int ok3 = interval(t, c, 0, idx, why, sizeof why);
    CHECK(ok3, "%s (%s, %llu KiB chunks): interval 3 with no writes reports none (%s)", name, kind, (unsigned long long)chunk >> 10, why);
    int ok4 = interval(t, c, 1, idx, why, sizeof why);
    CHECK(ok4, "%s (%s, %llu KiB chunks): interval 4 reports its one chunk (%s)", name, kind, (unsigned long long)chunk >> 10, why);
    if (!strcmp(name, "uffd-wp") || !strcmp(name, "mprotect"))
        CHECK(atomic_load(&t->faults) == 11, "%s: one write fault per first write to a chunk per interval (%lu, want 11)", name,
              (unsigned long)atomic_load(&t->faults));
    fl_tracker_destroy(t);
out:
    if (base)
        munmap(base, len);
    if (fd >= 0)
        close(fd);
    free(idx);
    return ran;
}

static void exact_sets_anon(const char *name)
{
    for (uint64_t chunk = 4096; chunk <= 16384; chunk *= 4)
        if (!exact_sets(name, chunk, false))
            return;
}

static void exact_sets_shared(const char *name)
{
    for (uint64_t chunk = 4096; chunk <= 16384; chunk *= 4)
        if (!exact_sets(name, chunk, true))
            return;
}

/* A writer thread keeps writing while the main thread collects and copies
 * the collected chunks to a shadow; after the writer stops and one last
 * collect, the shadow must equal the region: no write was lost in a race. */
struct conc {
    uint8_t *base;
    uint64_t len, chunk;
    atomic_bool stop;
    _Atomic uint64_t writes; /* read by the collecting thread while the writer runs */
};
static void *conc_writer(void *arg)
{
    struct conc *c = arg;
    uint64_t s = 88172645463325252ull, n = c->len / c->chunk;
    while (!atomic_load(&c->stop)) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        ((volatile uint64_t *)(c->base + (s % n) * c->chunk))[(s >> 32) % (c->chunk / 8)] = s;
        c->writes++;
    }
    return NULL;
}

static void concurrent(const char *name)
{
    struct conc c = {.len = 2 << 20, .chunk = 4096};
    int fd;
    c.base = map_region(c.len, false, &fd);
    uint8_t *shadow = malloc(c.len);
    uint64_t *idx = malloc(c.len / c.chunk * sizeof *idx), n;
    char err[256] = "";
    memcpy(shadow, c.base, c.len);
    struct fl_tracker *t = fl_tracker_create(name, c.base, c.len, c.chunk, false, 1, err, sizeof err);
    if (!t) {
        int refused = refused_for_kernel(name, err);
        CHECK(refused, "%s concurrent: unsupported by this kernel: %s", name, err);
        if (refused)
            unit_skip("%s refused by this kernel: %s", name, err);
        goto out;
    }
    pthread_t th;
    pthread_create(&th, NULL, conc_writer, &c);
    int rc = 0, rounds = 0;
    /* At least 200 ms and 1000 writes (a loaded machine writes slower, since
     * every collect re-protects), but never more than 5 s. */
    uint64_t start = fl_now_ns();
    for (; !rc; rounds++) {
        uint64_t el = fl_now_ns() - start;
        if (el > 5000000000ull || (el > 200000000ull && c.writes > 1000))
            break;
        rc = fl_tracker_collect(t, idx, &n, err, sizeof err);
        for (uint64_t i = 0; i < n; i++)
            memcpy(shadow + idx[i] * c.chunk, c.base + idx[i] * c.chunk, c.chunk);
    }
    atomic_store(&c.stop, true);
    pthread_join(th, NULL);
    if (!rc)
        rc = fl_tracker_collect(t, idx, &n, err, sizeof err);
    for (uint64_t i = 0; !rc && i < n; i++)
        memcpy(shadow + idx[i] * c.chunk, c.base + idx[i] * c.chunk, c.chunk);
    CHECK(!rc && c.writes > 100 && !memcmp(shadow, c.base, c.len),
          "%s: %llu writes racing with %d collects, the copies of collected chunks equal the region (%s)", name,
          (unsigned long long)c.writes, rounds, rc ? err : "no write lost");
    fl_tracker_destroy(t);
out:
    munmap(c.base, c.len);
    free(shadow);
    free(idx);
}

/* write-track over the three patterns: verified, nothing missed, and (for
 * a real tracker) exactly the chunks written. */
static void write_track_patterns(const char *name)
{
    char spec[512];
    const char *patterns[] = {"seq", "random", "hot"};
    for (size_t p = 0; p < 3; p++) {
        snprintf(spec, sizeof spec, "tracker=%s region=4MiB pattern=%s write_fraction=0.1 intervals=5", name, patterns[p]);
        int rc = fl_write_track(spec, out, sizeof out);
        if (rc && refused_for_kernel(name, out)) {
            unit_skip("%s refused by this kernel: %s", name, out);
            return;
        }
        bool exact = strcmp(name, "none") != 0;
        CHECK(rc == 0 && jis(out, "verified", "true") && jnum(out, "missed_chunks") == 0 && (!exact || jis(out, "tracker_exact", "true")) &&
                  jnum(out, "bytes_pushed") > 0,
              "write-track %s %s (local source): verified, nothing missed%s (%s)", name, patterns[p], exact ? ", exact" : "",
              rc ? out : "ran");
    }
}

/* A write through a second mapping: a tracker misses it and the final
 * comparison catches it; none pushes every chunk, so it carries it. */
static void inject_untracked(const char *name)
{
    char spec[512];
    snprintf(spec, sizeof spec, "tracker=%s region=4MiB chunk=16KiB write_fraction=0.2 intervals=3 inject_untracked=1", name);
    int rc = fl_write_track(spec, out, sizeof out);
    if (rc && refused_for_kernel(name, out)) {
        unit_skip("%s refused by this kernel: %s", name, out);
    } else if (!strcmp(name, "none")) {
        CHECK(rc == 0 && jis(out, "verified", "true"),
              "inject_untracked none: pushing every chunk carries the untracked write too (verified)");
    } else {
        CHECK(rc == 0 && jis(out, "verified", "false") && jnum(out, "missed_chunks") == 1 && jnum(out, "bad_chunks") == 1 &&
                  jnum(out, "first_bad_offset") == jnum(out, "injected_offset"),
              "inject_untracked %s: the write through a second mapping is missed and caught (verified=false at offset %lld)", name,
              jnum(out, "first_bad_offset"));
    }
}

/* write_bytes smaller than the chunk: amplification is chunk / write. */
static void write_amplification_small_writes(void)
{
    int rc =
        fl_write_track("tracker=uffd-wp-async region=4MiB chunk=16KiB write_bytes=512 pattern=random write_fraction=0.1", out, sizeof out);
    if (rc && refused_for_kernel("uffd-wp-async", out)) {
        unit_skip("uffd-wp-async refused by this kernel: %s", out);
        return;
    }
    CHECK(rc == 0 && jis(out, "verified", "true") && jis(out, "write_amplification", "32.0000"),
          "512-byte writes into 16 KiB chunks: write amplification 32 (%s)", rc ? out : "ran");
}

struct bad_spec {
    const char *spec, *want;
};

static void refuses(const struct bad_spec *bad, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = fl_write_track(bad[i].spec, out, sizeof out);
        CHECK(rc == -1 && strstr(out, bad[i].want), "write-track refuses '%s': %s", bad[i].spec, out);
    }
}

/* Refused while parsing, before any tracker is created. */
static void write_track_refuses_bad_specs(void)
{
    static const struct bad_spec bad[] = {
        {"tracker=teleport", "unknown tracker 'teleport'"},
        {"pattern=zigzag", "pattern must be seq, random or hot"},
        {"write_fraction=0", "write_fraction must be a number in (0, 1]"},
        {"write_bytes=5000 chunk=4096", "larger than the chunk"},
        {"intervals=0", "intervals must be"},
    };
    refuses(bad, UNIT_COUNT(bad));
}

/* Refused only at the last interval, after the default tracker (uffd-wp) ran. */
static void write_track_refuses_inject_without_spare_chunk(void)
{
    static const struct bad_spec bad[] = {
        {"region=4MiB inject_untracked=1 pattern=seq write_fraction=1", "inject_untracked needs"},
    };
    refuses(bad, UNIT_COUNT(bad));
}

/* The table's functions take no argument: one wrapper per scenario and tracker. */
#define TRACKER_TEST(fn, id, name)                                                                                                         \
    static void fn##_##id(void)                                                                                                            \
    {                                                                                                                                      \
        fn(name);                                                                                                                          \
    }
#define EVERY_TRACKER(fn)                                                                                                                  \
    TRACKER_TEST(fn, uffd_wp, "uffd-wp")                                                                                                   \
    TRACKER_TEST(fn, uffd_wp_async, "uffd-wp-async")                                                                                       \
    TRACKER_TEST(fn, mprotect, "mprotect")                                                                                                 \
    TRACKER_TEST(fn, soft_dirty, "soft-dirty")                                                                                             \
    TRACKER_TEST(fn, none, "none")
EVERY_TRACKER(exact_sets_anon)
EVERY_TRACKER(exact_sets_shared)
EVERY_TRACKER(write_track_patterns)
EVERY_TRACKER(inject_untracked)
/* No soft-dirty row: it loses a write landing between its pagemap read and
 * its clear, so it is exact only with a quiet writer (trackers/soft_dirty.c). */
TRACKER_TEST(concurrent, uffd_wp, "uffd-wp")
TRACKER_TEST(concurrent, uffd_wp_async, "uffd-wp-async")
TRACKER_TEST(concurrent, mprotect, "mprotect")
TRACKER_TEST(concurrent, none, "none")

/* The concurrent tests race on purpose (the writer against the copies of
 * collected chunks), which ThreadSanitizer would report. */
/* write-track unmaps its working memory twice on the way out: the second time
 * must close nothing (it once closed fd 0, stdin, which crashed a Node host
 * when libuv later met a socket that had taken that number). fd 0..2 are the
 * same files afterwards, with and without the memfd of inject_untracked. */
static void write_track_leaves_std_fds_alone(void)
{
    static const char *specs[] = {"tracker=mprotect region=1MiB", "tracker=mprotect region=1MiB inject_untracked=1"};
    for (size_t i = 0; i < 2; i++) {
        struct stat before[3], after[3];
        for (int fd = 0; fd < 3; fd++)
            CHECK(fstat(fd, &before[fd]) == 0, "fd %d open before", fd);
        fl_write_track(specs[i], out, sizeof out);
        for (int fd = 0; fd < 3; fd++)
            CHECK(fstat(fd, &after[fd]) == 0 && after[fd].st_ino == before[fd].st_ino && after[fd].st_dev == before[fd].st_dev,
                  "%s: fd %d still open, the same file", specs[i], fd);
    }
}

static const struct unit_test tests[] = {
    {"write-track-leaves-std-fds-alone", 0, write_track_leaves_std_fds_alone},
    {"exact-sets-anon-uffd-wp", NEED_UFFD, exact_sets_anon_uffd_wp},
    {"exact-sets-anon-uffd-wp-async", NEED_UFFD, exact_sets_anon_uffd_wp_async},
    {"exact-sets-anon-mprotect", 0, exact_sets_anon_mprotect},
    {"exact-sets-anon-soft-dirty", 0, exact_sets_anon_soft_dirty},
    {"exact-sets-anon-none", 0, exact_sets_anon_none},
    {"exact-sets-shared-uffd-wp", NEED_UFFD, exact_sets_shared_uffd_wp},
    {"exact-sets-shared-uffd-wp-async", NEED_UFFD, exact_sets_shared_uffd_wp_async},
    {"exact-sets-shared-mprotect", 0, exact_sets_shared_mprotect},
    {"exact-sets-shared-soft-dirty", 0, exact_sets_shared_soft_dirty},
    {"exact-sets-shared-none", 0, exact_sets_shared_none},
    {"concurrent-collects-lose-no-write-uffd-wp", NEED_UFFD | NEED_NO_TSAN, concurrent_uffd_wp},
    {"concurrent-collects-lose-no-write-uffd-wp-async", NEED_UFFD | NEED_NO_TSAN, concurrent_uffd_wp_async},
    {"concurrent-collects-lose-no-write-mprotect", NEED_NO_TSAN, concurrent_mprotect},
    {"concurrent-collects-lose-no-write-none", NEED_NO_TSAN, concurrent_none},
    {"write-track-patterns-verify-uffd-wp", NEED_UFFD, write_track_patterns_uffd_wp},
    {"write-track-patterns-verify-uffd-wp-async", NEED_UFFD, write_track_patterns_uffd_wp_async},
    {"write-track-patterns-verify-mprotect", 0, write_track_patterns_mprotect},
    {"write-track-patterns-verify-soft-dirty", 0, write_track_patterns_soft_dirty},
    {"write-track-patterns-verify-none", 0, write_track_patterns_none},
    {"untracked-write-caught-uffd-wp", NEED_UFFD, inject_untracked_uffd_wp},
    {"untracked-write-caught-uffd-wp-async", NEED_UFFD, inject_untracked_uffd_wp_async},
    {"untracked-write-caught-mprotect", 0, inject_untracked_mprotect},
    {"untracked-write-caught-soft-dirty", 0, inject_untracked_soft_dirty},
    {"untracked-write-carried-by-full-push-none", 0, inject_untracked_none},
    {"write-amplification-small-writes", NEED_UFFD, write_amplification_small_writes},
    {"write-track-refuses-bad-specs", 0, write_track_refuses_bad_specs},
    {"write-track-refuses-inject-without-spare-chunk", NEED_UFFD, write_track_refuses_inject_without_spare_chunk},
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
