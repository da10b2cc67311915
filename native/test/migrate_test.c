/* Native tests of streamed migration (issue 20): the tcp source's pipelined
 * WRITEs (sources/tcp.c write_runs) against test_server.h, which records the
 * most requests it had outstanding and holds every reply rtt_ms; pre-copy's
 * stop rule (scenarios/migrate_plan.c) as a table; and the migrate scenario
 * end to end (fl_migrate_source, then fl_migrate_dest on a uffd or sigsegv
 * region) for every tracker and destination pull, verified against the
 * source's replayed writes. soft-dirty is a skip with the kernel's reason
 * where it is refused. */
#define _GNU_SOURCE
#include "../include/faultlab.h"
#include "../src/core/internal.h"
#include "../src/scenarios/migrate_plan.h"
#include "../src/trackers/tracker.h"
#include "unit.h"
#include "test_server.h"

#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include "run_json.h"

#define REGION  (4u << 20)
#define CHUNK   4096u
#define NCHUNKS (REGION / CHUNK)

static int start(struct tsrv *s, int rtt_ms)
{
    int rc = ts_start_with(s, &(struct ts_opts){.region = REGION, .seed = 1, .rtt_ms = rtt_ms});
    CHECK(rc == 0, "the test NBD server starts");
    return rc;
}

/* A tcp source and one connection to the test server. */
static int open_conn(struct tsrv *s, struct fl_source **src, struct fl_conn **c)
{
    char spec[128], err[FL_ERR_LEN];
    struct fl_config cfg;
    snprintf(spec, sizeof spec, "source=tcp port=%d region=%u chunk=%u seed=1", s->port, REGION, CHUNK);
    *src = NULL;
    *c = NULL;
    int rc = fl_config_parse(spec, &cfg, err, sizeof err);
    if (!rc && !(*src = fl_source_tcp_create(&cfg, err, sizeof err)))
        rc = -1;
    if (!rc)
        rc = (*src)->ops->connect(*src, c, err, sizeof err);
    CHECK(rc == 0, "a tcp source connects to the test server %s", rc ? err : "");
    return rc;
}

/* A test server started with o and one connection to it; on failure nothing is left running. */
static int start_with_conn(struct tsrv *s, const struct ts_opts *o, struct fl_source **src, struct fl_conn **c)
{
    if (ts_start_with(s, o)) {
        CHECK(0, "the test NBD server starts");
        return -1;
    }
    if (open_conn(s, src, c)) {
        ts_stop(s);
        return -1;
    }
    return 0;
}

static void close_conn(struct fl_source *src, struct fl_conn *c)
{
    if (c)
        src->ops->disconnect(c);
    if (src)
        src->ops->destroy(src);
}

/* Every other chunk written (n runs of one chunk, and one long run at the
 * end) with `depth` in flight: all of them arrive, nothing else changes. */
static void write_runs_case(int depth, int want_min_outstanding, int want_max_outstanding)
{
    struct tsrv s;
    if (start(&s, 2))
        return;
    struct fl_source *src;
    struct fl_conn *c;
    uint8_t *mine = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint8_t *want = mmap(NULL, REGION, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    uint64_t *off = calloc(NCHUNKS, sizeof *off), *len = calloc(NCHUNKS, sizeof *len), n = 0;
    if (mine == MAP_FAILED || want == MAP_FAILED || !off || !len || open_conn(&s, &src, &c)) {
        CHECK(0, "set-up");
        goto out;
    }
    fl_fill(mine, REGION, 77, 0); /* other contents than the server's seed 1 */
    fl_fill(want, REGION, 1, 0);
    for (uint64_t i = 0; i < NCHUNKS / 2; i += 2, n++) {
        off[n] = i * CHUNK;
        len[n] = CHUNK;
    }
    off[n] = NCHUNKS / 2 * CHUNK; /* the upper half in one run */
    len[n++] = REGION / 2;
    for (uint64_t i = 0; i < n; i++)
        memcpy(want + off[i], mine + off[i], len[i]);
    char err[FL_ERR_LEN] = "";
    int rc = src->ops->write_runs(c, mine, off, len, n, depth, err, sizeof err);
    CHECK(rc == 0, "write_runs of %llu runs at depth %d %s", (unsigned long long)n, depth, err);
    uint64_t bad = 0;
    for (uint64_t i = 0; i < NCHUNKS; i++)
        bad += memcmp(s.data + i * CHUNK, want + i * CHUNK, CHUNK) != 0;
    CHECK(bad == 0, "the server holds every run written and nothing else changed (%llu chunks differ)", (unsigned long long)bad);
    int most = atomic_load(&s.max_outstanding);
    CHECK(most >= want_min_outstanding && most <= want_max_outstanding, "at most %d in flight, the server saw %d outstanding (want %d..%d)",
          depth, most, want_min_outstanding, want_max_outstanding);
    /* The connection stays usable: an ordinary READ after the batch. */
    uint8_t back[CHUNK];
    rc = src->ops->read(c, 0, back, CHUNK, err, sizeof err);
    CHECK(rc == 0 && !memcmp(back, mine, CHUNK), "a READ after the batch returns the written chunk %s", rc ? err : "");
out:
    close_conn(src, c);
    free(off);
    free(len);
    if (mine != MAP_FAILED)
        munmap(mine, REGION);
    if (want != MAP_FAILED)
        munmap(want, REGION);
    ts_stop(&s);
}

static void write_runs_pipelined(void)
{
    write_runs_case(64, 32, 64);
}

static void write_runs_depth_one(void)
{
    write_runs_case(1, 1, 1);
}

/* A WRITE past the export's end: the server's error fails the batch, names
 * the offset, and the connection refuses what follows. */
static void write_runs_error(void)
{
    struct tsrv s;
    struct fl_source *src;
    struct fl_conn *c;
    if (start_with_conn(&s, &(struct ts_opts){.region = REGION, .seed = 1}, &src, &c))
        return;
    static uint8_t buf[REGION + 2 * CHUNK];
    uint64_t off[2] = {0, REGION}, len[2] = {CHUNK, CHUNK};
    char err[FL_ERR_LEN] = "";
    int rc = src->ops->write_runs(c, buf, off, len, 2, 8, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "WRITE") && strstr(err, "0x400000"), "a WRITE the server refuses fails the batch: %s", err);
    rc = src->ops->write_runs(c, buf, off, len, 1, 8, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "unusable"), "and the connection refuses the next batch: %s", err);
    close_conn(src, c);
    ts_stop(&s);
}

/* A batch with a run the server's minimum block size refuses is refused
 * whole, before anything is sent: no WRITE of it stays in flight, so the
 * connection stays in step and every request slot comes back (4,096 more
 * requests on it all succeed). */
static void write_runs_misaligned(void)
{
    struct tsrv s;
    struct fl_source *src;
    struct fl_conn *c;
    if (start_with_conn(&s, &(struct ts_opts){.region = REGION, .seed = 1, .x.min_block = 8192, .x.max_block = 1u << 20}, &src, &c))
        return;
    static uint8_t buf[REGION];
    uint64_t off[2] = {0, 8192}, len[2] = {8192, 4096};
    char err[FL_ERR_LEN] = "";
    int rc = src->ops->write_runs(c, buf, off, len, 2, 8, err, sizeof err);
    CHECK(rc != 0 && strstr(err, "not aligned to the server's minimum block size of 8192"), "a misaligned run fails the batch: %s", err);
    uint8_t back[8192], want[8192];
    fl_fill(want, sizeof want, 1, 0);
    int bad = 0;
    for (int i = 0; i < 4097 && !bad; i++)
        bad = src->ops->read(c, 0, back, sizeof back, err, sizeof err) != 0;
    CHECK(!bad, "the connection serves 4,097 READs after it %s", bad ? err : "");
    CHECK(!bad && !memcmp(back, want, sizeof want), "and nothing of the batch was written (the first run's bytes are the server's own)");
    close_conn(src, c);
    ts_stop(&s);
}

/* ---- the stop rule -------------------------------------------------------------- */

static void stop_rule_table(void)
{
    const uint64_t MS = 1000000, MiB = 1 << 20;
    static const struct {
        const char *name;
        struct fl_mig_measure m;
        uint64_t rounds, max_rounds, limit_ms;
        enum fl_mig_stop want;
        uint64_t postcopy_after; /* hybrid */
    } t[] = {
        {"no bandwidth measured: go on", {4 * MiB, 0, 5 * MS, 0}, 1, 8, 300, FL_MIG_GO_ON, 0},
        {"4 MiB at 100 MiB/s + 2 RTT of 5 ms = 50 ms: converged", {4 * MiB, 100 * MiB, 5 * MS, 0}, 1, 8, 300, FL_MIG_CONVERGED, 0},
        {"the same against a 40 ms limit: go on", {4 * MiB, 100 * MiB, 5 * MS, 0}, 1, 8, 40, FL_MIG_GO_ON, 0},
        {"exactly at the limit: converged", {0, 100 * MiB, 10 * MS, 5 * MS}, 1, 8, 25, FL_MIG_CONVERGED, 0},
        {"the collect counts: 1 ms over", {0, 100 * MiB, 10 * MS, 6 * MS}, 1, 8, 25, FL_MIG_GO_ON, 0},
        {"the round trips alone exceed the limit", {0, 1000 * MiB, 200 * MS, 0}, 3, 8, 300, FL_MIG_GO_ON, 0},
        {"over the limit at max rounds: stop anyway", {64 * MiB, 10 * MiB, 5 * MS, 0}, 8, 8, 300, FL_MIG_MAX_ROUNDS, 0},
        {"under the limit at max rounds: converged wins", {1 * MiB, 100 * MiB, 5 * MS, 0}, 8, 8, 300, FL_MIG_CONVERGED, 0},
        {"limit 0: never converged", {0, 100 * MiB, 0, 1}, 2, 8, 0, FL_MIG_GO_ON, 0},
        {"hybrid before its round: go on though converged", {0, 100 * MiB, 0, 0}, 1, 8, 300, FL_MIG_GO_ON, 2},
        {"hybrid at its round: switch though far over the limit", {64 * MiB, 1 * MiB, 5 * MS, 0}, 2, 8, 300, FL_MIG_POSTCOPY_AFTER, 2},
    };
    for (size_t i = 0; i < UNIT_COUNT(t); i++) {
        enum fl_mig_stop got = fl_mig_decide(&t[i].m, t[i].rounds, t[i].max_rounds, t[i].limit_ms * MS, t[i].postcopy_after);
        CHECK(got == t[i].want, "%s: %s (want %s)", t[i].name, fl_mig_stop_name(got), fl_mig_stop_name(t[i].want));
    }
    struct fl_mig_measure m = {.dirty_bytes = 10 * MiB, .bytes_per_s = 100 * MiB, .rtt_ns = 2 * MS, .collect_ns = 1 * MS};
    CHECK(fl_mig_expected_downtime_ns(&m) == 105 * MS, "expected downtime = collect + bytes/bandwidth + 2 RTT (%llu ns)",
          (unsigned long long)fl_mig_expected_downtime_ns(&m));
}

/* ---- the scenario end to end -------------------------------------------------------- */

/* Source then destination against the test server; returns the source's rc. */
static int migrate(struct tsrv *s, const char *tracker, const char *extra, const char *strategy, const char *dest_prefetch, char *src_out,
                   size_t src_len)
{
    char spec[512];
    snprintf(spec, sizeof spec, "tracker=%s source=tcp port=%d region=%u chunk=%u seed=1 pattern=hot write_fraction=0.02 period_ms=2 %s",
             tracker, s->port, REGION, CHUNK, extra);
    int rc = fl_migrate_source(spec, src_out, src_len);
    if (rc)
        return rc;
    long long intervals = jnum(src_out, "intervals_written");
    char rspec[256], err[256];
    snprintf(rspec, sizeof rspec, "strategy=%s source=tcp port=%d region=%u chunk=%u seed=1 prefetch=%s", strategy, s->port, REGION, CHUNK,
             dest_prefetch);
    fl_region *r = fl_region_create(rspec, err, sizeof err);
    CHECK(r != NULL, "a %s destination with prefetch=%s %s", strategy, dest_prefetch, r ? "" : err);
    if (!r)
        return 0;
    snprintf(spec, sizeof spec, "pattern=hot write_fraction=0.02 intervals=%lld", intervals);
    int d = fl_migrate_dest(r, spec, out, sizeof out);
    CHECK(d == 0 && jtrue(out, "verified"), "%s -> %s (%s): the destination equals the source %s", tracker, strategy, dest_prefetch,
          d ? out : "");
    if (strcmp(dest_prefetch, "none"))
        CHECK(jnum(out, "prefetched") > 0 && jnum(out, "bg_threads") == 0, "prefetch=%s pulled %lld chunks, no touching threads",
              dest_prefetch, jnum(out, "prefetched"));
    fl_region_destroy(r);
    return 0;
}

/* ';'-separated values in a string field: how many. */
static int list_len(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":\"", key);
    const char *p = strstr(json, pat);
    if (!p)
        return -1;
    p += strlen(pat);
    int n = *p != '"';
    for (; *p && *p != '"'; p++)
        n += *p == ';';
    return n;
}

static void tracker_case(const char *tracker)
{
    char err[FL_ERR_LEN];
    static uint8_t probe[2 * 4096] __attribute__((aligned(4096)));
    struct fl_tracker *t = fl_tracker_create(tracker, probe, sizeof probe, 4096, false, -1, err, sizeof err);
    if (!t) {
        CHECK(!strcmp(tracker, "soft-dirty"), "only soft-dirty may be refused here: %s", err);
        unit_skip("%s refused by this kernel: %s", tracker, err);
        return;
    }
    fl_tracker_destroy(t);
    struct tsrv s;
    if (start(&s, 2))
        return;
    static char src[1 << 16];
    const char *lazy[] = {"uffd", "sigsegv"}, *pulls[] = {"background", "none"};
    for (int i = 0; i < 2; i++) {
        int rc = migrate(&s, tracker, "", lazy[i], pulls[i], src, sizeof src);
        CHECK(rc == 0, "%s: the source pushes and cuts over %s", tracker, rc ? src : "");
        if (rc)
            continue;
        long long rounds = jnum(src, "precopy_rounds");
        CHECK(rounds >= 1 && list_len(src, "round_dirty_chunks") == rounds && list_len(src, "round_push_ns") == rounds &&
                  list_len(src, "round_collect_ns") == rounds,
              "one dirty count, push time and collect time per round (%lld rounds)", rounds);
        CHECK(strstr(src, "\"stop_reason\":\"converged\"") != NULL, "a quiet 4 MiB region converges under 300 ms: %s",
              strstr(src, "stop_reason"));
        CHECK(jnum(src, "push_bytes_per_s") > 0 && jnum(src, "rtt_ns") >= 2000000, "bandwidth and the 2 ms round trip measured (%lld ns)",
              jnum(src, "rtt_ns"));
    }
    CHECK(atomic_load(&s.max_outstanding) > 1, "the pushes were pipelined (%d outstanding at most)", atomic_load(&s.max_outstanding));
    ts_stop(&s);
}

static void migrate_uffd_wp(void)
{
    tracker_case("uffd-wp");
}
static void migrate_uffd_wp_async(void)
{
    tracker_case("uffd-wp-async");
}
static void migrate_mprotect(void)
{
    tracker_case("mprotect");
}
static void migrate_soft_dirty(void)
{
    tracker_case("soft-dirty");
}

/* downtime_limit_ms=0 never converges: max_rounds pushes, then stop and
 * copy; the result still verifies. */
static void max_rounds_stop(void)
{
    struct tsrv s;
    if (start(&s, 0))
        return;
    static char src[1 << 16];
    int rc = migrate(&s, "uffd-wp", "downtime_limit_ms=0 max_rounds=3", "uffd", "criu", src, sizeof src);
    CHECK(rc == 0 && jnum(src, "precopy_rounds") == 3 && strstr(src, "\"stop_reason\":\"max-rounds\""),
          "limit 0: three rounds, stopped by max_rounds %s", rc ? src : "");
    ts_stop(&s);
}

/* ---- post-copy and hybrid: the source serves, the destination pulls from it ---- */

struct src_run {
    char spec[512];
    char out[1 << 16];
    int rc;
};

static void *src_main(void *arg)
{
    struct src_run *a = arg;
    a->rc = fl_migrate_source(a->spec, a->out, sizeof a->out);
    return NULL;
}

/* One line from fd (blocking). */
static int read_line(int fd, char *buf, size_t len)
{
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t k = read(fd, buf + n, 1);
        if (k != 1)
            return -1;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = 0;
    return 0;
}

static void mode_case(const char *mode, const char *strategy, long long want_rounds, const char *want_reason)
{
    struct tsrv s; /* the chunk server: hybrid's rounds push to it */
    if (start(&s, 0))
        return;
    int op[2], gp[2];
    if (pipe(op) || pipe(gp)) {
        CHECK(0, "pipes");
        ts_stop(&s);
        return;
    }
    static struct src_run a;
    snprintf(a.spec, sizeof a.spec,
             "mode=%s postcopy_after=2 tracker=uffd-wp source=tcp port=%d region=%u chunk=%u seed=1 pattern=hot write_fraction=0.02 "
             "period_ms=2 serve_rtt_us=2000 out_fd=%d go_fd=%d",
             mode, s.port, REGION, CHUNK, op[1], gp[0]);
    pthread_t th;
    pthread_create(&th, NULL, src_main, &a);
    char line[1 << 12];
    int port = -1;
    if (!read_line(op[0], line, sizeof line))
        sscanf(line, "{\"serving\":%d}", &port);
    CHECK(port > 0, "%s: the source announces the port it serves on (%s)", mode, line);
    fl_region *r = NULL;
    if (port > 0) {
        char rspec[256], err[256];
        snprintf(rspec, sizeof rspec, "strategy=%s source=tcp port=%d region=%u chunk=%u seed=1 prefetch=background", strategy, port,
                 REGION, CHUNK);
        r = fl_region_create(rspec, err, sizeof err);
        CHECK(r != NULL, "%s: a %s destination on the source's server %s", mode, strategy, r ? "" : err);
    }
    if (write(gp[1], "start\n", 6) != 6 || read_line(op[0], a.out, sizeof a.out)) {
        CHECK(0, "%s: the source cuts over", mode);
    } else if (r) {
        char spec[128];
        snprintf(spec, sizeof spec, "pattern=hot write_fraction=0.02 intervals=%lld", jnum(a.out, "intervals_written"));
        int d = fl_migrate_dest(r, spec, out, sizeof out);
        CHECK(d == 0 && jtrue(out, "verified"), "%s -> %s: the destination pulled from the source equals it %s", mode, strategy,
              d ? out : "");
        char reason[64];
        snprintf(reason, sizeof reason, "\"stop_reason\":\"%s\"", want_reason);
        CHECK(jnum(a.out, "precopy_rounds") == want_rounds && strstr(a.out, reason) && jnum(a.out, "final_dirty_chunks") == 0,
              "%s: %lld rounds, stopped as %s, nothing pushed at the stop: %s", mode, want_rounds, want_reason, a.out);
        CHECK(jnum(out, "prefetched") > 0, "%s: the destination's background pull fetched %lld chunks", mode, jnum(out, "prefetched"));
    }
    if (write(gp[1], "done\n", 5) != 5)
        CHECK(0, "done written");
    close(gp[1]); /* the source, if it is still waiting, reads end of file */
    pthread_join(th, NULL);
    CHECK(a.rc == 0, "%s: the source returns once done %s", mode, a.rc ? a.out : "");
    if (r)
        fl_region_destroy(r);
    close(op[0]);
    close(op[1]);
    close(gp[0]);
    ts_stop(&s);
}

static void postcopy_uffd(void)
{
    mode_case("postcopy", "uffd", 0, "postcopy");
}
static void postcopy_sigsegv(void)
{
    mode_case("postcopy", "sigsegv", 0, "postcopy");
}
static void hybrid_uffd(void)
{
    mode_case("hybrid", "uffd", 2, "postcopy-after");
}

static void bad_specs(void)
{
    static const struct {
        const char *spec, *says;
    } bad[] = {
        {"max_rounds=0", "max_rounds 1 to 64"},         {"max_rounds=65", "max_rounds 1 to 64"},
        {"push_depth=0", "push_depth must be"},         {"push_depth=4096", "push_depth must be"},
        {"downtime_limit_ms=x", "downtime_limit_ms"},   {"mode=x", "mode must be precopy, postcopy or hybrid"},
        {"postcopy_after=0", "postcopy_after must be"}, {"mode=postcopy", "need out_fd and go_fd"},
    };
    for (size_t i = 0; i < UNIT_COUNT(bad); i++) {
        char spec[128];
        snprintf(spec, sizeof spec, "source=tcp port=1 region=1MiB %s", bad[i].spec);
        int rc = fl_migrate_source(spec, out, sizeof out);
        CHECK(rc != 0 && strstr(out, bad[i].says), "%s refused: %s", bad[i].spec, out);
    }
}

static const struct unit_test tests[] = {
    {"write-runs-pipelined", 0, write_runs_pipelined},
    {"write-runs-depth-one", 0, write_runs_depth_one},
    {"write-runs-misaligned", 0, write_runs_misaligned},
    {"write-runs-error-fails-the-batch", 0, write_runs_error},
    {"stop-rule-table", 0, stop_rule_table},
    {"migrate-verifies-uffd-wp", NEED_UFFD, migrate_uffd_wp},
    {"migrate-verifies-uffd-wp-async", NEED_UFFD, migrate_uffd_wp_async},
    {"migrate-verifies-mprotect", NEED_UFFD, migrate_mprotect},
    {"migrate-verifies-soft-dirty", NEED_UFFD, migrate_soft_dirty},
    {"migrate-max-rounds-stop", NEED_UFFD, max_rounds_stop},
    {"postcopy-uffd-verifies", NEED_UFFD, postcopy_uffd},
    {"postcopy-sigsegv-verifies", NEED_UFFD, postcopy_sigsegv},
    {"hybrid-uffd-verifies", NEED_UFFD, hybrid_uffd},
    {"migrate-refuses-bad-specs", NEED_UFFD, bad_specs},
};

int main(int argc, char **argv)
{
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
