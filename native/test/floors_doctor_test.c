/* Tests for fl_doctor and fl_floors: return codes, valid JSON, expected keys,
 * no leaked fds, the SIGSEGV handler restored and chained. Prints the numbers
 * (as TAP "#" comments). Every floor must run; the uffd floor's own test
 * needs a userfaultfd. */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>
#include "../include/faultlab.h"
#include "unit.h"
#include "proc_count.h"

/* ---- a minimal JSON validator (RFC 8259 grammar, no semantics) ---- */
static const char *js_ws(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    return p;
}
static const char *js_value(const char *p, int depth);
static const char *js_string(const char *p)
{
    if (*p++ != '"')
        return NULL;
    while (*p && *p != '"') {
        if ((unsigned char)*p < 0x20)
            return NULL;
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
                        return NULL;
                p += 4;
            } else if (!*p || !strchr("\"\\/bfnrt", *p)) {
                return NULL;
            }
        }
        p++;
    }
    return *p == '"' ? p + 1 : NULL;
}
static const char *js_number(const char *p)
{
    const char *s = p;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return NULL;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return NULL;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return p > s ? p : NULL;
}
static const char *js_value(const char *p, int depth)
{
    if (depth > 64)
        return NULL;
    p = js_ws(p);
    if (*p == '{' || *p == '[') {
        char close = *p == '{' ? '}' : ']';
        bool obj = *p == '{';
        p = js_ws(p + 1);
        if (*p == close)
            return p + 1;
        for (;;) {
            if (obj) {
                p = js_string(js_ws(p));
                if (!p)
                    return NULL;
                p = js_ws(p);
                if (*p++ != ':')
                    return NULL;
            }
            p = js_value(p, depth + 1);
            if (!p)
                return NULL;
            p = js_ws(p);
            if (*p == ',') {
                p++;
                continue;
            }
            return *p == close ? p + 1 : NULL;
        }
    }
    if (*p == '"')
        return js_string(p);
    if (!strncmp(p, "true", 4))
        return p + 4;
    if (!strncmp(p, "false", 5))
        return p + 5;
    if (!strncmp(p, "null", 4))
        return p + 4;
    return js_number(p);
}
static bool json_valid(const char *s)
{
    const char *p = js_value(s, 0);
    return p && *js_ws(p) == 0;
}

static bool has_key(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    return strstr(json, pat) != NULL;
}

static int count_fds(void)
{
    return (int)count_dir("/proc/self/fd");
}

/* Pull "key":number out of the object that follows "name":{ */
static double floor_field(const char *json, const char *name, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":{", name);
    const char *o = strstr(json, pat);
    if (!o)
        return -1;
    const char *end = strchr(o, '}');
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *k = strstr(o, pat);
    if (!k || (end && k > end))
        return -1;
    return atof(k + strlen(pat));
}

static const char *floor_names[] = {"timer", "memcpy", "anon_touch", "anon_touch_write", "uffd", "sigsegv", "sigsegv_prepopulated"};

static void print_floors(const char *json)
{
    for (size_t i = 0; i < sizeof floor_names / sizeof floor_names[0]; i++) {
        const char *nm = floor_names[i];
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\":{\"error\"", nm);
        if (strstr(json, pat)) {
            printf("#   %-17s error (see JSON)\n", nm);
            continue;
        }
        printf("#   %-17s p50 %7.0f  p99 %7.0f  mean %8.1f ns  n %.0f\n", nm, floor_field(json, nm, "p50_ns"),
               floor_field(json, nm, "p99_ns"), floor_field(json, nm, "mean_ns"), floor_field(json, nm, "n"));
    }
}

/* ---- SIGSEGV chaining: a sentinel handler that owns one page of its own ---- */
static uint8_t *own_page;
static long page_size;
static atomic_long sentinel_hits;
static atomic_int stop_chaos;
static void sentinel(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    (void)uc;
    if ((uint8_t *)si->si_addr >= own_page && (uint8_t *)si->si_addr < own_page + page_size) {
        mprotect(own_page, (size_t)page_size, PROT_READ | PROT_WRITE);
        atomic_fetch_add(&sentinel_hits, 1);
        return;
    }
    signal(SIGSEGV, SIG_DFL); /* not ours either: crash for real */
}
static long chaos_faults;
static void *chaos_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&stop_chaos)) {
        mprotect(own_page, (size_t)page_size, PROT_NONE);
        *(volatile uint8_t *)own_page = 1; /* faults: must reach sentinel, via fl_floors' handler or not */
        chaos_faults++;
        usleep(200);
    }
    return NULL;
}

static char out[1 << 16];

static void doctor_reports_every_key(void)
{
    int fds0 = count_fds();
    int rc = fl_doctor(out, sizeof out);
    printf("# doctor: %s\n", out);
    CHECK(rc == 0, "fl_doctor returns 0");
    CHECK(json_valid(out), "fl_doctor output is valid JSON");
    static const char *dkeys[] = {"kernel",
                                  "machine",
                                  "cpu_model",
                                  "cpus_online",
                                  "page_size",
                                  "euid",
                                  "vm_max_map_count",
                                  "vm_unprivileged_userfaultfd",
                                  "hugepages_2m_total",
                                  "hugepages_2m_free",
                                  "uffd_attempts",
                                  "uffd_path",
                                  "uffd_api",
                                  "pagemap_scan",
                                  "soft_dirty",
                                  "thp",
                                  "hypervisor_flag",
                                  "machine_floors",
                                  "minor_fault_read_ns",
                                  "minor_fault_write_ns",
                                  "syscall_ns",
                                  "wake_floors",
                                  "same_cpu_round_trip_ns",
                                  "cross_cpu_round_trip_ns",
                                  "cpuidle_driver",
                                  "guest_halt_poll_ns"};
    for (size_t i = 0; i < sizeof dkeys / sizeof dkeys[0]; i++)
        CHECK(has_key(out, dkeys[i]), "fl_doctor has key %s", dkeys[i]);
    if (strstr(out, "\"uffd_api\":{\"ok\":true"))
        CHECK(has_key(out, "features") && has_key(out, "features_hex") && has_key(out, "ioctls"),
              "fl_doctor uffd_api lists features and ioctls");
    CHECK(count_fds() == fds0, "fl_doctor closes every fd (%d before, %d after)", fds0, count_fds());
}

/* machine_floors: medians of a measured minor fault and syscall, positive and
 * ordered as the kernel's work is: a write fault allocates and zeroes a page,
 * a read fault maps the shared zero page, a getppid does neither. */
static void doctor_measures_machine_floors(void)
{
    int rc = fl_doctor(out, sizeof out);
    CHECK(rc == 0, "fl_doctor returns 0");
    double rd = floor_field(out, "machine_floors", "minor_fault_read_ns"), wr = floor_field(out, "machine_floors", "minor_fault_write_ns"),
           sc = floor_field(out, "machine_floors", "syscall_ns");
    printf("# machine floors: read fault %.0f ns, write fault %.0f ns, syscall %.0f ns\n", rd, wr, sc);
    CHECK(rd > 0 && wr > 0 && sc > 0, "every machine floor was measured (read %.0f, write %.0f, syscall %.0f)", rd, wr, sc);
    CHECK(sc < wr, "a syscall costs less than a write fault (%.0f < %.0f ns)", sc, wr);
    CHECK(floor_field(out, "machine_floors", "samples") == 1024, "1024 samples each");
    double same = floor_field(out, "wake_floors", "same_cpu_round_trip_ns"),
           cross = floor_field(out, "wake_floors", "cross_cpu_round_trip_ns");
    printf("# wake-up round trip: same CPU %.0f ns, other CPU %.0f ns\n", same, cross);
    CHECK(same > 0, "a same-CPU wake-up round trip was measured (%.0f ns)", same);
    CHECK(sysconf(_SC_NPROCESSORS_ONLN) < 2 || cross > 0, "with two CPUs a cross-CPU one was too (%.0f ns)", cross);
    CHECK(floor_field(out, "wake_floors", "rounds") == 1000, "1000 round trips each");
}

static void doctor_small_buffer_fails_cleanly(void)
{
    char small[64];
    memset(small, 'x', sizeof small);
    int rc = fl_doctor(small, sizeof small);
    CHECK(rc == -1 && memchr(small, 0, sizeof small), "fl_doctor with a 64-byte buffer fails cleanly: %s",
          memchr(small, 0, sizeof small) ? small : "(no NUL)");
}

/* The message names the size the whole text needs: the JSON writer keeps counting past the end. */
static void doctor_names_the_size_it_needs(void)
{
    char too_small[512];
    int rc = fl_doctor(too_small, sizeof too_small);
    const char *need = strstr(too_small, "need ");
    size_t needed = need ? strtoull(need + 5, NULL, 10) : 0;
    CHECK(rc == -1 && needed > sizeof too_small && needed < sizeof out, "fl_doctor with 512 bytes names the size it needs: %s", too_small);
    /* machine_floors are measured anew on each call: their digits may grow a little. */
    char *fit = malloc(needed + 16);
    rc = fit ? fl_doctor(fit, needed + 16) : -1;
    CHECK(rc == 0 && json_valid(fit), "fl_doctor fits in the size it named (%zu bytes, + 16 for newly measured digits): %.120s", needed,
          fit ? fit : "");
    free(fit);
}

static void floors_bad_specs_refused(void)
{
    int rc = fl_floors("pages=0", out, sizeof out);
    CHECK(rc == -1 && strstr(out, "pages"), "fl_floors rejects pages=0: %s", out);
    rc = fl_floors("cpus=everywhere", out, sizeof out);
    CHECK(rc == -1 && strstr(out, "cpus"), "fl_floors rejects cpus=everywhere: %s", out);
    rc = fl_floors("colour=blue", out, sizeof out);
    CHECK(rc == -1 && strstr(out, "colour"), "fl_floors rejects an unknown key: %s", out);
    static const char *bad[][2] = {{"fetch=udp", "fetch must be local or tcp"},
                                   {"server_cpu=0", "server_cpu places the server of fetch=tcp"},
                                   {"fetch=tcp server_cpu=4096", "server_cpu must be a CPU this process may run on"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = fl_floors(bad[i][0], out, sizeof out);
        CHECK(rc == -1 && strstr(out, bad[i][1]), "fl_floors rejects %s: %s", bad[i][0], out);
    }
    char small[64];
    memset(small, 'x', sizeof small);
    rc = fl_floors("pages=16", small, sizeof small);
    CHECK(rc == -1 && memchr(small, 0, sizeof small), "fl_floors with a 64-byte buffer fails cleanly");
}

static void install_sentinel(void)
{
    struct sigaction mine;
    memset(&mine, 0, sizeof mine);
    mine.sa_sigaction = sentinel;
    mine.sa_flags = SA_SIGINFO;
    sigemptyset(&mine.sa_mask);
    sigaction(SIGSEGV, &mine, NULL);
}

static const char *modes[] = {"same", "split", "free"};

/* Each placement; the SIGSEGV handler (a sentinel of the test's) must be
 * restored. The uffd floor is checked by floors-uffd-floor-runs, which needs
 * a userfaultfd. */
static void floors_every_placement(void)
{
    install_sentinel();
    for (int m = 0; m < 3; m++) {
        char spec[64];
        struct sigaction before, after;
        snprintf(spec, sizeof spec, "pages=2048 cpus=%s", modes[m]);
        int fds0 = count_fds();
        sigaction(SIGSEGV, NULL, &before);
        int rc = fl_floors(spec, out, sizeof out);
        sigaction(SIGSEGV, NULL, &after);
        printf("# floors %s: %s\n", spec, out);
        CHECK(rc == 0, "fl_floors(%s) returns 0", spec);
        CHECK(json_valid(out), "fl_floors(%s) output is valid JSON", spec);
        CHECK(before.sa_sigaction == after.sa_sigaction && before.sa_flags == after.sa_flags, "fl_floors(%s) restores the SIGSEGV handler",
              spec);
        CHECK(count_fds() == fds0, "fl_floors(%s) closes every fd", spec);
        static const char *fkeys[] = {"cpus",    "pages",  "page_bytes", "floors", "anon_touch", "uffd",
                                      "sigsegv", "memcpy", "p50_ns",     "p99_ns", "mean_ns",    "n"};
        bool keys = true;
        for (size_t i = 0; i < sizeof fkeys / sizeof fkeys[0]; i++)
            if (!has_key(out, fkeys[i])) {
                printf("# missing key %s\n", fkeys[i]);
                keys = false;
            }
        CHECK(keys, "fl_floors(%s) has every expected key", spec);
        CHECK(!strstr(out, "\"verified\":false"), "fl_floors(%s) every floor's data verifies", spec);
        for (size_t i = 0; i < sizeof floor_names / sizeof floor_names[0]; i++) {
            if (!strcmp(floor_names[i], "uffd"))
                continue;
            char pat[64];
            snprintf(pat, sizeof pat, "\"%s\":{\"error\"", floor_names[i]);
            CHECK(!strstr(out, pat) && floor_field(out, floor_names[i], "n") == 2048, "fl_floors(%s) floor %s ran 2048 samples", spec,
                  floor_names[i]);
        }
        print_floors(out);
    }
    signal(SIGSEGV, SIG_DFL);
}

static void floors_uffd_floor_runs(void)
{
    for (int m = 0; m < 3; m++) {
        char spec[64];
        snprintf(spec, sizeof spec, "pages=2048 cpus=%s", modes[m]);
        fl_floors(spec, out, sizeof out);
        CHECK(!strstr(out, "\"uffd\":{\"error\"") && floor_field(out, "uffd", "n") == 2048, "fl_floors(%s) floor uffd ran 2048 samples",
              spec);
    }
}

/* sigsegv_prepopulated does the sigsegv strategy's pre-population before its
 * loop: its loop takes no minor fault per page (the kernel's count), where the
 * plain sigsegv floor allocates each page inside it; both report a set-up.
 * Under ThreadSanitizer a first touch also faults TSan's shadow memory, so the
 * counts hold only in the plain and ASan builds (as core_test's app-minor-faults). */
static void floors_sigsegv_prepopulated_outside_the_loop(void)
{
    int rc = fl_floors("pages=2048 cpus=same", out, sizeof out);
    CHECK(rc == 0, "fl_floors returns 0: %.200s", out);
    double plain = floor_field(out, "sigsegv", "minflt"), pre = floor_field(out, "sigsegv_prepopulated", "minflt");
    CHECK(plain >= 2048, "the sigsegv floor takes a minor fault per page in its loop (%.0f for 2048)", plain);
    CHECK(pre >= 0 && pre < 2048 / 4, "sigsegv_prepopulated takes almost none in its loop (%.0f for 2048)", pre);
    CHECK(floor_field(out, "sigsegv_prepopulated", "faults") == 2048, "sigsegv_prepopulated's handler served every page (%.0f)",
          floor_field(out, "sigsegv_prepopulated", "faults"));
    static const char *with_setup[] = {"sigsegv", "sigsegv_prepopulated"};
    for (int i = 0; i < 2; i++)
        CHECK(floor_field(out, with_setup[i], "setup_ns") > 0, "floor %s reports setup_ns (%.0f)", with_setup[i],
              floor_field(out, with_setup[i], "setup_ns"));
}

/* Faults outside the floors' region reach the previous handler. */
static void floors_chain_sigsegv_to_previous_handler(void)
{
    install_sentinel();
    own_page = mmap(NULL, (size_t)page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(own_page != MAP_FAILED, "mmap of the neighbour's page");
    if (own_page == MAP_FAILED) {
        signal(SIGSEGV, SIG_DFL);
        return;
    }
    pthread_t chaos;
    atomic_store(&stop_chaos, 0);
    pthread_create(&chaos, NULL, chaos_main, NULL);
    int rc = fl_floors("pages=4096 cpus=free", out, sizeof out);
    atomic_store(&stop_chaos, 1);
    pthread_join(chaos, NULL);
    CHECK(rc == 0 && !strstr(out, "\"verified\":false"), "fl_floors runs and verifies beside a faulting thread");
    CHECK(atomic_load(&sentinel_hits) == chaos_faults && chaos_faults > 0,
          "the previous SIGSEGV handler saw all %ld of the neighbour's faults (%ld)", chaos_faults, atomic_load(&sentinel_hits));
    munmap(own_page, (size_t)page_size);
    signal(SIGSEGV, SIG_DFL);
}

/* A top-level number of a flat JSON object; -1 when absent. */
static double top_field(const char *json, const char *key)
{
    char pat[128];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? strtod(p + strlen(pat), NULL) : -1;
}

/* The network floor: every placement, a page and a 1 MiB reply, each round trip's
 * bytes verified, every fd closed (its server thread is joined before it returns). */
static void tcp_floor_runs_and_verifies(void)
{
    static const char *sizes[] = {"4096", "1048576"};
    for (int m = 0; m < 3; m++)
        for (int b = 0; b < 2; b++) {
            char spec[96];
            snprintf(spec, sizeof spec, "bytes=%s requests=200 cpus=%s%s", sizes[b], modes[m], m == 0 ? " server_cpu=0" : "");
            int fds0 = count_fds();
            int rc = fl_tcp_floor(spec, out, sizeof out);
            printf("# tcp floor %s: %s\n", spec, out);
            CHECK(rc == 0 && json_valid(out), "fl_tcp_floor(%s) returns 0 and valid JSON", spec);
            CHECK(strstr(out, "\"verified\":true") && top_field(out, "n") == 200 && top_field(out, "bytes") == atof(sizes[b]),
                  "fl_tcp_floor(%s) timed 200 verified round trips of %s bytes", spec, sizes[b]);
            CHECK(top_field(out, "min_ns") > 0 && top_field(out, "p50_ns") >= top_field(out, "min_ns") &&
                      top_field(out, "max_ns") >= top_field(out, "p50_ns") && top_field(out, "throughput_mibps") > 0,
                  "fl_tcp_floor(%s) quantiles in order", spec);
            CHECK(count_fds() == fds0, "fl_tcp_floor(%s) closes every fd", spec);
        }
}

static void tcp_floor_bad_specs_refused(void)
{
    static const char *bad[][2] = {
        {"bytes=0", "bytes"},        {"bytes=4097", "bytes"},   {"bytes=134217728", "bytes"},     {"requests=0", "requests"},
        {"cpus=everywhere", "cpus"}, {"colour=blue", "colour"}, {"server_cpu=4096", "server_cpu"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = fl_tcp_floor(bad[i][0], out, sizeof out);
        CHECK(rc == -1 && strstr(out, bad[i][1]), "fl_tcp_floor refuses %s: %s", bad[i][0], out);
    }
}

/* fetch=tcp: only the three handler floors, each page fetched over the C TCP
 * pair and verified (the server answers each page's own bytes), in every
 * placement; the server thread is joined and its socket closed. */
static void floors_fetch_tcp_runs_and_verifies(void)
{
    install_sentinel();
    for (int m = 0; m < 3; m++) {
        char spec[96];
        snprintf(spec, sizeof spec, "pages=512 cpus=%s fetch=tcp%s", modes[m], m == 0 ? " server_cpu=0" : "");
        int fds0 = count_fds();
        struct sigaction before, after;
        sigaction(SIGSEGV, NULL, &before);
        int rc = fl_floors(spec, out, sizeof out);
        sigaction(SIGSEGV, NULL, &after);
        printf("# floors %s: %s\n", spec, out);
        CHECK(rc == 0 && json_valid(out) && strstr(out, "\"fetch\":\"tcp\""), "fl_floors(%s) returns 0 and valid JSON", spec);
        CHECK(!has_key(out, "timer") && !has_key(out, "anon_touch") && !has_key(out, "memcpy"),
              "fl_floors(%s) runs the handler floors only", spec);
        static const char *fetched[] = {"uffd", "sigsegv", "sigsegv_prepopulated"};
        for (int i = 0; i < 3; i++)
            CHECK(floor_field(out, fetched[i], "n") == 512 && floor_field(out, fetched[i], "faults") == 512,
                  "fl_floors(%s) floor %s fetched and served 512 pages", spec, fetched[i]);
        CHECK(!strstr(out, "\"verified\":false") && !strstr(out, "\"error\""), "fl_floors(%s) every fetched page verifies", spec);
        CHECK(before.sa_sigaction == after.sa_sigaction, "fl_floors(%s) restores the SIGSEGV handler", spec);
        CHECK(count_fds() == fds0, "fl_floors(%s) closes every fd", spec);
    }
    signal(SIGSEGV, SIG_DFL);
}

/* only=NAME runs that floor alone (the others are not in the JSON), with
 * fetch=local and fetch=tcp; a name that is no floor, or a floor fetch=tcp
 * does not run, is refused. */
static void floors_only_runs_one(void)
{
    install_sentinel();
    static const char *specs[][2] = {{"pages=256 only=memcpy", "memcpy"},
                                     {"pages=256 only=uffd", "uffd"},
                                     {"pages=256 fetch=tcp only=sigsegv", "sigsegv"},
                                     {"pages=256 fetch=tcp only=uffd", "uffd"}};
    static const char *all[] = {"timer", "memcpy", "anon_touch", "anon_touch_write", "uffd", "sigsegv", "sigsegv_prepopulated"};
    for (size_t k = 0; k < sizeof specs / sizeof specs[0]; k++) {
        int rc = fl_floors(specs[k][0], out, sizeof out);
        int others = 0;
        for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
            others += strcmp(all[i], specs[k][1]) && has_key(out, all[i]);
        char said[64];
        snprintf(said, sizeof said, "\"only\":\"%s\"", specs[k][1]);
        CHECK(rc == 0 && json_valid(out) && strstr(out, said) && floor_field(out, specs[k][1], "n") == 256 && !others &&
                  !strstr(out, "\"verified\":false"),
              "fl_floors(%s) runs %s alone and it verifies: %s", specs[k][0], specs[k][1], rc ? out : "");
    }
    static const char *bad[][2] = {{"only=everything", "only must name a floor"},
                                   {"fetch=tcp only=memcpy", "fetch=tcp runs the handler floors only"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = fl_floors(bad[i][0], out, sizeof out);
        CHECK(rc == -1 && strstr(out, bad[i][1]), "fl_floors rejects %s: %s", bad[i][0], out);
    }
    signal(SIGSEGV, SIG_DFL);
}

/* The streaming floor: every placement, a few depths, with and without a
 * window, a region of 1 MiB and of 4 KiB chunks; the application's bytes
 * verify (with span > 1, each chunk where it belongs), every fd is closed. */
static void stream_floor_runs_and_verifies(void)
{
    static const char *shapes[] = {"region=67108864 chunk=1048576 ahead=2", "region=67108864 chunk=1048576 ahead=1",
                                   "region=8388608 chunk=4096 ahead=16 span=64", "region=67108864 chunk=1048576 ahead=2 window=2 span=8",
                                   "region=8388608 chunk=4096 ahead=8 window=1 span=3"};
    for (int m = 0; m < 3; m++)
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
            char spec[160];
            snprintf(spec, sizeof spec, "%s cpus=%s%s", shapes[k], modes[m], m == 0 ? " server_cpu=0" : "");
            int fds0 = count_fds();
            int rc = fl_stream_floor(spec, out, sizeof out);
            printf("# stream floor %s: %s\n", spec, out);
            CHECK(rc == 0 && json_valid(out) && strstr(out, "\"verified\":true"), "fl_stream_floor(%s) returns 0 and verifies", spec);
            CHECK(top_field(out, "throughput_mibps") > 0 && top_field(out, "install_ns_p50") > 0, "fl_stream_floor(%s) measured", spec);
            double window = top_field(out, "window"), lead = top_field(out, "max_lead");
            CHECK(window == 0 || (lead >= 1 && lead <= window), "fl_stream_floor(%s) ran at most the window ahead (%.0f, window %.0f)",
                  spec, lead, window);
            /* The client's CPU: both threads' clocks, each > 0, summed; on one CPU
             * (cpus=same) no more than the wall time around both threads. */
            double cpu = top_field(out, "cpu_ns"), app_cpu = top_field(out, "app_cpu_ns"), h_cpu = top_field(out, "handler_cpu_ns");
            double wall = top_field(out, "wall_ns");
            CHECK(app_cpu > 0 && h_cpu > 0 && cpu == app_cpu + h_cpu && (m != 0 || cpu <= 1.02 * wall),
                  "fl_stream_floor(%s) client CPU: application %.0f + handler %.0f ns, over %.0f ns of wall", spec, app_cpu, h_cpu, wall);
            CHECK(count_fds() == fds0, "fl_stream_floor(%s) closes every fd", spec);
        }
}

static void stream_floor_bad_specs_refused(void)
{
    static const char *bad[][2] = {{"ahead=0", "ahead must be 1 to 16"},
                                   {"ahead=17", "ahead must be 1 to 16"},
                                   {"window=17", "window must be 0 to 16"},
                                   {"span=65", "span must be 1 to 64"},
                                   {"region=2097152 chunk=1048576 span=3", "must not exceed the region"},
                                   {"chunk=1000", "multiple of the page size"},
                                   {"region=3145728 chunk=2097152", "region a multiple of chunk"},
                                   {"chunk=134217728", "chunk must be 1 to"},
                                   {"cpus=everywhere", "cpus must be same, split or free"},
                                   {"server_cpu=4096", "server_cpu must be a CPU this process may run on"},
                                   {"colour=blue", "unknown key 'colour'"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = fl_stream_floor(bad[i][0], out, sizeof out);
        CHECK(rc == -1 && strstr(out, bad[i][1]), "fl_stream_floor refuses %s: %s", bad[i][0], out);
    }
}

static const struct unit_test tests[] = {
    {"tcp-floor-runs-and-verifies", 0, tcp_floor_runs_and_verifies},
    {"tcp-floor-bad-specs-refused", 0, tcp_floor_bad_specs_refused},
    {"stream-floor-runs-and-verifies", NEED_UFFD, stream_floor_runs_and_verifies},
    {"stream-floor-bad-specs-refused", 0, stream_floor_bad_specs_refused},
    {"doctor-reports-every-key", 0, doctor_reports_every_key},
    {"doctor-small-buffer-fails-cleanly", 0, doctor_small_buffer_fails_cleanly},
    {"doctor-measures-machine-floors", 0, doctor_measures_machine_floors},
    {"doctor-names-the-size-it-needs", 0, doctor_names_the_size_it_needs},
    {"floors-bad-specs-refused", 0, floors_bad_specs_refused},
    {"floors-every-placement", 0, floors_every_placement},
    {"floors-uffd-floor-runs", NEED_UFFD, floors_uffd_floor_runs},
    {"floors-fetch-tcp-runs-and-verifies", NEED_UFFD, floors_fetch_tcp_runs_and_verifies},
    {"floors-only-runs-one", NEED_UFFD, floors_only_runs_one},
    {"floors-chain-sigsegv-to-previous-handler", 0, floors_chain_sigsegv_to_previous_handler},
    {"floors-sigsegv-prepopulated-outside-the-loop", NEED_NO_TSAN, floors_sigsegv_prepopulated_outside_the_loop},
};

int main(int argc, char **argv)
{
    page_size = sysconf(_SC_PAGESIZE);
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
