/* Native tests of the region API: every strategy reads a real region and
 * verifies every byte, counts one fault per chunk touched, catches a corrupted
 * chunk, and rejects bad specs with a clear message. */
#include "../src/core/internal.h" /* first: it defines _GNU_SOURCE (sched_getaffinity) */
#include "../include/faultlab.h"
#include "unit.h"

#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "run_json.h"

static const char *const strategies[] = {"uffd", "sigsegv", "memory", "disk", "eager"};
static const char *const lazy[] = {"uffd", "sigsegv"};

static void every_strategy_verifies(void)
{
    char spec[256];
    for (size_t i = 0; i < 5; i++) {
        snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=4KiB", strategies[i]);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "chunks_touched") == 1024, "%s read-seq over 4 MiB verifies every byte (%s)",
              strategies[i], rc ? out : "ran");
        rc = run(spec, "workload=read-random seed=7");
        CHECK(rc == 0 && jtrue(out, "verified"), "%s read-random verifies", strategies[i]);
    }
}

static void lazy_fault_counts(void)
{
    char spec[256];
    for (size_t i = 0; i < 2; i++) {
        for (int kib = 4; kib <= 64; kib *= 16) {
            snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=%dKiB", lazy[i], kib);
            int rc = run(spec, "workload=read-seq");
            long long want = 8 * 1024 / kib;
            CHECK(rc == 0 && jnum(out, "faults") == want && jnum(out, "bytes_fetched") == 8 << 20,
                  "%s with %d KiB chunks: faults == chunks touched (%lld, want %lld)", lazy[i], kib, jnum(out, "faults"), want);
        }
    }
}

/* The kernel's own count of the application's minor faults. memory and eager
 * populate before the workload; uffd's faults each count once resolved;
 * sigsegv's view has its page-table entries before the fault, so its accesses
 * take no second fault. Under ThreadSanitizer the application's first touch of
 * a page also touches TSan's shadow memory, a minor fault of its own, so these
 * bounds hold only in the plain and ASan builds. */
static void app_minor_faults(void)
{
    char spec[256];
    for (size_t i = 2; i < 5; i += 2) { /* memory, eager */
        snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=4KiB", strategies[i]);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jnum(out, "app_minor_faults") < 16, "%s: populated before the workload, no minor fault in it (%lld)",
              strategies[i], jnum(out, "app_minor_faults"));
    }
    for (size_t i = 0; i < 2; i++) {
        for (int kib = 4; kib <= 64; kib *= 16) {
            snprintf(spec, sizeof spec, "strategy=%s region=8MiB chunk=%dKiB", lazy[i], kib);
            int rc = run(spec, "workload=read-seq");
            long long want = 8 * 1024 / kib, minflt = jnum(out, "app_minor_faults");
            if (!strcmp(lazy[i], "uffd"))
                CHECK(rc == 0 && minflt >= want, "uffd %d KiB: the application took a minor fault per chunk (%lld for %lld)", kib, minflt,
                      want);
            else
                CHECK(rc == 0 && minflt < want / 4, "sigsegv %d KiB: no second fault after the handler (%lld minor faults for %lld chunks)",
                      kib, minflt, want);
        }
    }
}

static void lazy_first_chunk_and_corruption(void)
{
    char spec[256];
    for (size_t i = 0; i < 2; i++) {
        snprintf(spec, sizeof spec, "strategy=%s region=1MiB", lazy[i]);
        int rc = run(spec, "workload=first-chunk");
        CHECK(rc == 0 && jnum(out, "faults") == 1 && jtrue(out, "verified") && jnum(out, "first_access_ns") > 0,
              "%s first-chunk: one fault, verified", lazy[i]);
        snprintf(spec, sizeof spec, "strategy=%s region=1MiB corrupt=12345", lazy[i]);
        rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && !jtrue(out, "verified") && jnum(out, "first_bad_offset") == 12344,
              "%s: a corrupted source chunk gives verified=false at offset 12344", lazy[i]);
    }
}

static void lazy_threads_and_cpus(void)
{
    char spec[256];
    for (size_t i = 0; i < 2; i++) {
        snprintf(spec, sizeof spec, "strategy=%s region=4MiB handler_threads=3 cpus=free", lazy[i]);
        int rc = run(spec, "workload=read-random");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") == 1024, "%s with 3 handler threads, unpinned", lazy[i]);
        snprintf(spec, sizeof spec, "strategy=%s region=4MiB cpus=split", lazy[i]);
        rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified"), "%s with cpus=split", lazy[i]);
    }
}

static void bad_specs_refused(void)
{
    struct {
        const char *spec, *want;
    } bad[] = {
        {"strategy=uffd chunk=1000", "not a multiple of the page size"},
        {"strategy=uffd region=0", "region of 0 bytes"},
        {"strategy=nope", "unknown strategy"},
        {"strategy=uffd source=carrier-pigeon", "unknown source"},
        {"strategy=uffd region=1MiB chunk=768KiB", "not a multiple of the chunk"},
        {"strategy=uffd bogus=1", "bad value for 'bogus'"},
        {"strategy=uffd source=tcp port=1", "cannot connect"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[512] = "";
        fl_region *r = fl_region_create(bad[i].spec, err, sizeof err);
        CHECK(!r && strstr(err, bad[i].want), "bad spec '%s' is refused: %s", bad[i].spec, err);
        fl_region_destroy(r);
    }
}

static void region_runs_once(void)
{
    /* A region runs once: its faults are first touches. */
    char err[512];
    fl_region *r = fl_region_create("strategy=uffd region=64KiB", err, sizeof err);
    uint64_t planned = 1, done = fl_region_progress(r, &planned);
    CHECK(done == 0 && planned == 0, "progress before the run: none planned, none done (%llu/%llu)", (unsigned long long)done,
          (unsigned long long)planned);
    int rc1 = fl_run(r, "workload=read-seq app_threads=2", out, sizeof out);
    done = fl_region_progress(r, &planned);
    CHECK(rc1 == 0 && done == 16 && planned == 16, "progress after a 2-thread run counts both threads' accesses: %llu/%llu",
          (unsigned long long)done, (unsigned long long)planned);
    int rc2 = fl_run(r, "workload=read-seq", out, sizeof out);
    CHECK(rc1 == 0 && rc2 == -1 && strstr(out, "runs once"), "a second run on one region is refused");
    fl_region_destroy(r);
}

/* setup_ns: fl_region_create times every strategy's set-up alike. It is
 * positive and lies within the caller's own timing of fl_region_create. */
static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void setup_ns_every_strategy(void)
{
    char spec[256], err[512];
    for (size_t i = 0; i < 5; i++) {
        snprintf(spec, sizeof spec, "strategy=%s region=4MiB chunk=4KiB", strategies[i]);
        uint64_t t0 = mono_ns();
        fl_region *r = fl_region_create(spec, err, sizeof err);
        uint64_t outer = mono_ns() - t0;
        CHECK(r != NULL, "%s: region created (%s)", strategies[i], r ? "ok" : err);
        if (!r)
            continue;
        int rc = fl_run(r, "workload=read-seq", out, sizeof out);
        fl_region_destroy(r);
        long long setup = jnum(out, "setup_ns");
        CHECK(rc == 0 && setup > 0 && (uint64_t)setup <= outer, "%s: setup_ns %lld in (0, %llu] (the caller's time around create)",
              strategies[i], setup, (unsigned long long)outer);
    }
}

/* The ';'-separated numbers of a string field; how many were read (at most max). */
static int jlist(const char *json, const char *key, unsigned long long *v, int max)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return 0;
    p += strlen(pat);
    int n = 0;
    while (n < max && *p >= '0' && *p <= '9') {
        char *end;
        v[n++] = strtoull(p, &end, 10);
        p = *end == ';' ? end + 1 : end;
    }
    return n;
}

static void fine_cdf(void)
{
    int rc = run("strategy=uffd region=4MiB chunk=4KiB", "workload=read-seq");
    unsigned long long fine[128], coarse[32];
    int nf = jlist(out, "fault_ns_cdf_fine", fine, 128), nc = jlist(out, "fault_ns_cdf", coarse, 32);
    CHECK(rc == 0 && nf == 101 && nc == 21, "fault_ns_cdf_fine has 101 quantiles, fault_ns_cdf 21 (%d, %d)", nf, nc);
    if (nf != 101 || nc != 21)
        return;
    int sorted = 1, same = 1;
    for (int i = 1; i < nf; i++)
        sorted &= fine[i - 1] <= fine[i];
    for (int i = 0; i < nc; i++)
        same &= fine[i * 5] == coarse[i];
    CHECK(sorted, "the fine quantiles never decrease");
    CHECK(same, "every 5th fine quantile is the coarse one (p0, p5, ..., p100)");
    CHECK((long long)fine[50] == jnum(out, "fault_ns_p50"), "fine p50 %llu is fault_ns_p50 %lld", fine[50], jnum(out, "fault_ns_p50"));
}

/* fl_verify checks every word: any one changed bit anywhere in a buffer is
 * counted, and the first bad offset is reported (its fast path only says
 * whether anything differs, so both paths are exercised). */
static void verify_counts_every_word(void)
{
    enum { WORDS = 4099 }; /* not a multiple of any vector width */
    static uint64_t b[WORDS];
    const uint64_t seed = 7, off = 8 * 1000;
    fl_fill(b, sizeof b, seed, off);
    uint64_t at = 0;
    CHECK(fl_verify(b, sizeof b, seed, off, &at) == 0 && at == UINT64_MAX, "a filled buffer verifies (first_bad %llu)",
          (unsigned long long)at);
    CHECK(fl_verify(b, sizeof b, seed + 1, off, &at) == WORDS, "another seed differs in every word");
    CHECK(fl_verify(b, sizeof b, seed, off + 8, &at) == WORDS && at == off + 8, "another offset differs in every word, first at its start");
    int wrong = 0;
    for (uint64_t i = 0; i < WORDS; i += 97) {
        b[i] ^= 1ull << (i % 64);
        if (fl_verify(b, sizeof b, seed, off, &at) != 1 || at != off + 8 * i)
            wrong++;
        b[WORDS - 1] ^= 1ull << 63; /* and the last word (i never reaches it) */
        if (fl_verify(b, sizeof b, seed, off, &at) != 2 || at != off + 8 * i)
            wrong++;
        b[WORDS - 1] ^= 1ull << 63;
        b[i] ^= 1ull << (i % 64);
    }
    for (uint64_t i = WORDS - 5; i < WORDS; i++) { /* alone in the tail, past any whole vector */
        b[i] ^= 1ull << 17;
        if (fl_verify(b, sizeof b, seed, off, &at) != 1 || at != off + 8 * i)
            wrong++;
        b[i] ^= 1ull << 17;
    }
    CHECK(!wrong, "one flipped bit is found wherever it is, with its offset (%d wrong)", wrong);
}

/* Each of fl_verify's fast paths on its own (the CPU picks one at run time, so
 * the other would go untested): a clean buffer passes, any single flipped bit
 * is seen, also alone in the tail past the last whole vector. */
static void verify_each_fast_path(void)
{
    enum { WORDS = 4099 };
    static uint64_t b[WORDS];
    const uint64_t seed = 11, off = 8 * 77;
    fl_fill(b, sizeof b, seed, off);
    const struct {
        enum fl_vec_path path;
        const char *name;
    } paths[] = {{FL_VEC_PLAIN, "plain"}, {FL_VEC_AVX2, "avx2"}, {FL_VEC_AUTO, "auto"}};
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        int clean = fl_verify_any_diff(b, sizeof b, seed, off, paths[p].path);
        if (clean < 0) {
            printf("# the %s path is not available on this CPU\n", paths[p].name);
            continue;
        }
        int missed = 0;
        for (uint64_t i = 0; i < WORDS; i++) {
            b[i] ^= 1ull << (i % 64);
            missed += fl_verify_any_diff(b, sizeof b, seed, off, paths[p].path) != 1;
            b[i] ^= 1ull << (i % 64);
        }
        CHECK(clean == 0 && !missed && fl_verify_any_diff(b, sizeof b, seed + 1, off, paths[p].path) == 1,
              "%s path: a filled buffer passes, every one of %d single flipped bits is seen (%d missed), another seed differs",
              paths[p].name, WORDS, missed);
    }
}

/* Each of fl_fill's paths on its own writes the contents' definition: word i
 * of the region is a splitmix64-style mix of the seed and i, written out here
 * again so that a change to either side shows (images and servers of one seed
 * must agree across builds). Each tail length past the last whole vector, at
 * two offsets, into a buffer aligned to 32 bytes and one 8 bytes past that. */
static uint64_t reference_word(uint64_t seed, uint64_t index)
{
    uint64_t x = index + seed * 0x9E3779B97F4A7C15ull;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    return x ^ (x >> 29);
}

static void fill_each_path(void)
{
    enum { WORDS = 4099 };
    static uint64_t b[WORDS + 2] __attribute__((aligned(32)));
    const uint64_t seed = 13, offs[] = {0, 8 * 1234567};
    const struct {
        enum fl_vec_path path;
        const char *name;
    } paths[] = {{FL_VEC_PLAIN, "plain"}, {FL_VEC_AVX2, "avx2"}, {FL_VEC_AUTO, "auto"}};
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        if (fl_fill_by(b, 8, seed, 0, paths[p].path) < 0) {
            printf("# the %s fill path is not available on this CPU\n", paths[p].name);
            continue;
        }
        uint64_t wrong = 0;
        for (int start = 0; start < 2; start++)
            for (size_t o = 0; o < sizeof offs / sizeof *offs; o++)
                for (uint64_t n = WORDS - 8; n <= WORDS; n++) { /* whole vectors, then each tail length */
                    memset(b, 0xa5, sizeof b);
                    fl_fill_by(b + start, 8 * n, seed, offs[o], paths[p].path);
                    for (uint64_t i = 0; i < n; i++)
                        wrong += b[start + i] != reference_word(seed, offs[o] / 8 + i);
                    wrong += b[start + n] != 0xa5a5a5a5a5a5a5a5ull; /* nothing past the end */
                    wrong += start && b[0] != 0xa5a5a5a5a5a5a5a5ull; /* nor before the start */
                }
        CHECK(!wrong,
              "%s fill path: every word of %d to %d-word fills, at two offsets and two alignments, is the contents' definition, "
              "nothing written outside (%llu wrong)",
              paths[p].name, WORDS - 8, WORDS, (unsigned long long)wrong);
    }
}

/* A CPU key takes a CPU this process may run on, not just an online one: a
 * process started on fewer CPUs (taskset) is told which it has; and the
 * placements (cpus=same, split) use the CPUs it has. */
static void cpu_key_is_an_allowed_cpu(void)
{
    cpu_set_t orig, one;
    char err[256];
    int cpu = -1;
    int readable = !sched_getaffinity(getpid(), sizeof orig, &orig);
    CHECK(readable, "the process's CPUs are readable");
    if (!readable)
        return;
    int first = -1, second = -1;
    for (int c = 0; c < CPU_SETSIZE && second < 0; c++)
        if (CPU_ISSET(c, &orig))
            *(first < 0 ? &first : &second) = c;
    char v[16];
    snprintf(v, sizeof v, "%d", first);
    CHECK(!fl_parse_cpu_key("test", "cpu", v, &cpu, err, sizeof err) && cpu == first, "CPU %d, one this process has, is taken", first);
    CHECK(fl_parse_cpu_key("test", "cpu", "100000", &cpu, err, sizeof err) &&
              strstr(err, "test: cpu must be a CPU this process may run on"),
          "CPU 100000 is refused: %s", err);
    if (second < 0) {
        printf("# one CPU only: no second CPU to take away\n");
        return;
    }
    CPU_ZERO(&one);
    CPU_SET(first, &one);
    char want[32];
    snprintf(want, sizeof want, "(%d), got '%d'", first, second);
    snprintf(v, sizeof v, "%d", second);
    CHECK(fl_cpu_for(FL_CPUS_SAME, true) == first && fl_cpu_for(FL_CPUS_SPLIT, false) == first && fl_cpu_for(FL_CPUS_SPLIT, true) == second,
          "cpus=same puts everything on CPU %d, split the handler side on CPU %d", first, second);
    int set = sched_setaffinity(getpid(), sizeof one, &one);
    int rc = fl_parse_cpu_key("test", "cpu", v, &cpu, err, sizeof err);
    CPU_ZERO(&one);
    CPU_SET(second, &one);
    set |= sched_setaffinity(getpid(), sizeof one, &one);
    int same = fl_cpu_for(FL_CPUS_SAME, false), split = fl_cpu_for(FL_CPUS_SPLIT, true);
    sched_setaffinity(getpid(), sizeof orig, &orig);
    CHECK(!set && rc && strstr(err, want), "with the process on CPU %d alone, CPU %d (online) is refused, naming the CPUs it has: %s",
          first, second, err);
    CHECK(same == second && split == second, "with the process on CPU %d alone, cpus=same and split use it (%d, %d), not CPU %d", second,
          same, split, first);
}

/* This process's children (the handler process, where there is one), from
 * every thread's list: any thread may have started it. */
static int child_pids(pid_t *out, int cap)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[300];
        snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
        FILE *f = fopen(path, "r");
        long p;
        while (f && n < cap && fscanf(f, "%ld", &p) == 1)
            out[n++] = (pid_t)p;
        if (f)
            fclose(f);
    }
    if (d)
        closedir(d);
    return n;
}

static double cpu_of(const pid_t *pids, int n)
{
    double t = 0;
    for (int i = 0; i < n; i++) {
        uint64_t c = fl_process_cpu_ns_of(pids[i]);
        t += c == FL_CPU_UNKNOWN ? 0 : (double)c;
    }
    return t;
}

/* The CPU time of this whole process during one fl_run (every thread of it,
 * ended ones too), and of its children over the same run (a handler
 * process): a yardstick other load on the machine cannot move, as it would
 * move the wall time, and from the same run, as this VM's cost of fresh
 * memory moves from one run to the next. */
static int run_timed_cpu(const char *spec, double *process_cpu_ns, double *children_cpu_ns, int *children)
{
    char err[512];
    fl_region *r = fl_region_create(spec, err, sizeof err);
    if (!r) {
        snprintf(out, sizeof out, "create: %s", err);
        return -1;
    }
    pid_t kids[8];
    *children = child_pids(kids, 8);
    struct timespec a, b;
    double k0 = cpu_of(kids, *children);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
    int rc = fl_run(r, "workload=read-seq", out, sizeof out);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
    *children_cpu_ns = cpu_of(kids, *children) - k0;
    fl_region_destroy(r);
    *process_cpu_ns = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
    return rc;
}

/* client_cpu_ns counts every client thread once. Against this process's own
 * CPU time over the run, and its handler process's with handler=process: the
 * client's threads are all of it but the run's set-up and summing (so at least
 * 0.7 of it, and never more); leaving out the handler threads, the prefetch
 * engine or its installer drops it to about half, leaving out the handler
 * process to no more than this process's own. CPU time, not wall time, and
 * from the same run: other load on the machine moves neither side, and
 * neither does how much this run's fresh memory cost. */
static void client_cpu_counts_every_thread(void)
{
    static const struct {
        const char *spec;
        bool other_process;
    } cases[] = {
        {"strategy=uffd region=32MiB chunk=4KiB cpus=same", false},
        {"strategy=uffd region=256MiB chunk=1MiB prefetch=ahead:4 cpus=same", false},
        {"strategy=uffd region=256MiB chunk=1MiB prefetch=ahead:4 cpus=free", false}, /* the installer copies */
        {"strategy=uffd region=32MiB chunk=4KiB cpus=same handler=process", true},
        {"strategy=sigsegv region=32MiB chunk=4KiB cpus=same", false},
        {"strategy=sigsegv region=256MiB chunk=1MiB prefetch=ahead:4 cpus=same", false},
        {"strategy=memory region=256MiB chunk=1MiB cpus=same", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double own = 0, kids_cpu = 0;
        int kids = 0;
        int rc = run_timed_cpu(cases[i].spec, &own, &kids_cpu, &kids);
        double cpu = (double)jnum(out, "client_cpu_ns"), ref = own + kids_cpu;
        /* The handler process's clock over the whole run also holds its own
         * ending (statistics, teardown), outside the accesses client_cpu_ns
         * spans: there the check is that its share is counted (more than
         * this process alone) and that nothing is counted twice. */
        bool low = cases[i].other_process ? cpu >= 1.1 * own : cpu >= 0.7 * ref;
        bool within = kids == (cases[i].other_process ? 1 : 0) && low && cpu <= ref * 1.02 + 1e6;
        CHECK(rc == 0 && jtrue(out, "verified") && within,
              "%s: client_cpu_ns %.0f ms against %.0f ms (this process's CPU time over the run%s, %.0f ms of it this process's) (%.2f)",
              cases[i].spec, cpu / 1e6, ref / 1e6, kids ? ", and its handler process's" : "", own / 1e6, ref > 0 ? cpu / ref : 0);
    }
}

static const struct unit_test tests[] = {
    {"verify-counts-every-word", 0, verify_counts_every_word},
    {"verify-each-fast-path", 0, verify_each_fast_path},
    {"fill-each-path", 0, fill_each_path},
    {"cpu-key-is-an-allowed-cpu", 0, cpu_key_is_an_allowed_cpu},
    {"client-cpu-counts-every-thread", NEED_UFFD, client_cpu_counts_every_thread},
    {"fine-cdf", NEED_UFFD, fine_cdf},
    {"every-strategy-verifies", NEED_UFFD, every_strategy_verifies},
    {"lazy-fault-counts", NEED_UFFD, lazy_fault_counts},
    {"app-minor-faults", NEED_UFFD | NEED_NO_TSAN, app_minor_faults},
    {"lazy-first-chunk-and-corruption", NEED_UFFD, lazy_first_chunk_and_corruption},
    {"lazy-threads-and-cpus", NEED_UFFD, lazy_threads_and_cpus},
    {"bad-specs-refused", 0, bad_specs_refused},
    {"region-runs-once", NEED_UFFD, region_runs_once},
    {"setup-ns-every-strategy", NEED_UFFD, setup_ns_every_strategy},
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
