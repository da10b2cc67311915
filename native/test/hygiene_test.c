/* Resource hygiene: creating and destroying regions many times, with and
 * without runs, with good and failing sources, leaves the process's open fds
 * (/proc/self/fd), threads (/proc/self/task) and mappings (/proc/self/maps
 * lines) exactly where they started.
 *
 * The tcp cases talk to a small NBD server on a thread of this test (the
 * handshake of test_server.h, then READ, FLUSH and DISC) that can also
 * misbehave: reset the connection or stop answering after a few READs. The server thread
 * and its listening socket exist before the baseline is taken; its accepted
 * connections are waited out before every count. */
#define _GNU_SOURCE
#include "../include/faultlab.h"
#include "unit.h"
#include "test_server.h"
#include "proc_count.h"

#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ---- counting what the process holds ----------------------------------------- */

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = fgetc(f)) != EOF)
        n += c == '\n';
    fclose(f);
    return n;
}

struct counts {
    long fds, tasks, maps;
};

/* ---- an NBD server on a thread -------------------------------------------------- */

enum srv_mode { SRV_OK, SRV_RESET, SRV_STALL };
#define SRV_MAX_CONNS 64
#define SRV_REGION    (64u << 10)
#define SRV_SEED      1u

static _Atomic int srv_mode = SRV_OK;
static _Atomic int srv_after = 3; /* READs answered per connection before misbehaving */
static _Atomic int srv_open = 0; /* accepted connections not yet closed */
static _Atomic int srv_stop = 0;
static int srv_listen = -1;
static int srv_port;

struct srv_conn {
    int fd;
    int reads;
    int stalled;
};

static void srv_close(struct srv_conn *c, int reset)
{
    if (reset) {
        struct linger l = {.l_onoff = 1, .l_linger = 0}; /* close with RST */
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(c->fd);
    c->fd = -1;
    atomic_fetch_sub(&srv_open, 1);
}

/* One request from c (its header is readable). */
static void srv_serve(struct srv_conn *c, uint8_t *buf)
{
    uint8_t req[NBD_REQUEST_BYTES], resp[NBD_REPLY_BYTES];
    if (ts_recv(c->fd, req, sizeof req) || nbd_get32(req) != NBD_REQUEST_MAGIC) {
        srv_close(c, 0);
        return;
    }
    uint16_t type = nbd_get16(req + 6);
    uint64_t off = nbd_get64(req + 16);
    uint32_t len = nbd_get32(req + 24), err = 0;
    if (type == NBD_CMD_DISC) {
        srv_close(c, 0);
        return;
    }
    if (c->stalled)
        return; /* read and dropped: the client waits for nothing */
    nbd_put32(resp, NBD_SIMPLE_REPLY_MAGIC);
    memcpy(resp + 8, req + 8, 8); /* the cookie */
    if (type == NBD_CMD_READ && len <= SRV_REGION && off <= SRV_REGION - len && len % 8 == 0) {
        if (c->reads++ >= atomic_load(&srv_after) && atomic_load(&srv_mode) != SRV_OK) {
            if (atomic_load(&srv_mode) == SRV_RESET)
                srv_close(c, 1);
            else
                c->stalled = 1;
            return;
        }
        nbd_put32(resp + 4, 0);
        fl_fill(buf, len, SRV_SEED, off);
        send(c->fd, resp, sizeof resp, MSG_NOSIGNAL | MSG_MORE);
        send(c->fd, buf, len, MSG_NOSIGNAL);
        return;
    }
    if (type != NBD_CMD_FLUSH)
        err = NBD_EINVAL; /* no WRITE here: its payload would follow */
    nbd_put32(resp + 4, err);
    send(c->fd, resp, sizeof resp, MSG_NOSIGNAL);
}

static void *srv_main(void *arg)
{
    (void)arg;
    struct srv_conn conns[SRV_MAX_CONNS];
    uint8_t *buf = malloc(SRV_REGION);
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        conns[i].fd = -1;
    while (!atomic_load(&srv_stop)) {
        struct pollfd p[SRV_MAX_CONNS + 1];
        int idx[SRV_MAX_CONNS + 1], n = 0;
        p[n] = (struct pollfd){.fd = srv_listen, .events = POLLIN};
        idx[n++] = -1;
        for (int i = 0; i < SRV_MAX_CONNS; i++)
            if (conns[i].fd >= 0) {
                p[n] = (struct pollfd){.fd = conns[i].fd, .events = POLLIN};
                idx[n++] = i;
            }
        if (poll(p, (nfds_t)n, 50) <= 0)
            continue;
        for (int k = 0; k < n; k++) {
            if (!p[k].revents)
                continue;
            if (idx[k] < 0) {
                int fd = accept4(srv_listen, NULL, NULL, SOCK_CLOEXEC);
                int slot = -1;
                for (int i = 0; i < SRV_MAX_CONNS && slot < 0 && fd >= 0; i++)
                    if (conns[i].fd < 0)
                        slot = i;
                if (slot < 0) {
                    if (fd >= 0)
                        close(fd);
                    continue;
                }
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                conns[slot] = (struct srv_conn){.fd = fd};
                atomic_fetch_add(&srv_open, 1);
                /* The handshake at once, blocking: the clients are threads of this process. */
                struct ts_export x = {
                    .size = SRV_REGION, .tflags = NBD_FLAG_SEND_FLUSH | NBD_FLAG_READ_ONLY, .description = "faultlab seed=1"};
                if (ts_handshake(fd, &x))
                    srv_close(&conns[slot], 0);
            } else if (conns[idx[k]].fd >= 0) {
                srv_serve(&conns[idx[k]], buf);
            }
        }
    }
    for (int i = 0; i < SRV_MAX_CONNS; i++)
        if (conns[i].fd >= 0)
            srv_close(&conns[i], 0);
    free(buf);
    return NULL;
}

/* ---- the test ---------------------------------------------------------------------- */

static char out[1 << 16];

/* One create (+ run) + destroy. expect: 1 = the run verifies, 0 = the run
 * fails, -1 = the create fails. Returns 0 when it went as expected. */
static int cycle(const char *spec, const char *run_spec, int expect)
{
    char err[512];
    fl_region *r = fl_region_create(spec, err, sizeof err);
    if (!r) {
        snprintf(out, sizeof out, "create: %s", err);
        return expect == -1 ? 0 : -1;
    }
    int ok = expect != -1;
    if (ok && run_spec) {
        int rc = fl_run(r, run_spec, out, sizeof out);
        ok = expect == 1 ? rc == 0 && strstr(out, "\"verified\":true") != NULL : rc != 0;
    }
    fl_region_destroy(r);
    return ok ? 0 : -1;
}

static struct counts now_counts(void)
{
    /* Let the server close what the clients closed (it polls every 50 ms). */
    for (int i = 0; i < 200 && atomic_load(&srv_open) > 0; i++)
        usleep(10000);
    return (struct counts){count_dir("/proc/self/fd"), count_dir("/proc/self/task"), count_lines("/proc/self/maps")};
}

/* Mappings: exact in the plain build. AddressSanitizer's own allocator maps
 * memory for itself as the test runs, so under ASan a bounded growth is
 * allowed: a leak of one mapping per region would add hundreds. Heap leaks are
 * LeakSanitizer's job there. */
#if defined(__SANITIZE_ADDRESS__)
#define MAPS_SLACK 64
#else
#define MAPS_SLACK 0
#endif

static void check_same(const struct counts *base, const char *what)
{
    struct counts c = now_counts();
    /* A joined thread can still be listed in /proc/self/task for a moment
     * (the kernel wakes the joiner before the task is gone): give it 1 s. */
    for (int i = 0; i < 100 && c.tasks > base->tasks; i++) {
        usleep(10000);
        c = now_counts();
    }
    CHECK(c.fds == base->fds && c.tasks == base->tasks && c.maps >= base->maps && c.maps <= base->maps + MAPS_SLACK,
          "%s: fds %ld -> %ld, threads %ld -> %ld, mappings %ld -> %ld%s", what, base->fds, c.fds, base->tasks, c.tasks, base->maps, c.maps,
          MAPS_SLACK ? " (ASan: up to +64 of its own allowed)" : "");
}

static const char *const strategies[] = {"uffd", "sigsegv", "memory", "disk", "eager"};
static const int lazy_or_eager[] = {1, 1, 0, 0, 1};
/* Every other tcp run of uffd and sigsegv prefetches: the engine's threads
 * (uffd's installer too) and connections go with the region as well. */
#define PREFETCH(s, i) ((s) < 2 && (i) % 2 ? " prefetch=ahead:4" : "")

static pthread_t srv_thread;
static int srv_running;
static int closed_port;
static int base_taken;
static struct counts base;

/* The server thread, its listening socket and one of everything exist before
 * the counts every test compares with are taken, once for all the tests. */
static const struct counts *baseline(void)
{
    if (base_taken)
        return &base;
    char spec[256];
    srv_listen = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (srv_listen < 0 || bind(srv_listen, (struct sockaddr *)&a, sizeof a) || listen(srv_listen, 64) ||
        getsockname(srv_listen, (struct sockaddr *)&a, &alen)) {
        CHECK(0, "hygiene: cannot start the test's NBD server: %s", strerror(errno));
        return NULL;
    }
    srv_port = ntohs(a.sin_port);
    if (pthread_create(&srv_thread, NULL, srv_main, NULL)) {
        CHECK(0, "hygiene: cannot start the test's NBD server thread");
        return NULL;
    }
    srv_running = 1;

    /* A port nothing listens on: bind one, note it, close it. */
    int tmp = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t blen = sizeof b;
    bind(tmp, (struct sockaddr *)&b, sizeof b);
    getsockname(tmp, (struct sockaddr *)&b, &blen);
    closed_port = ntohs(b.sin_port);
    close(tmp);

    /* Warm-up: one of everything, so lazy one-time set-up (the SIGSEGV handler's
     * first install, stdio buffers, allocator arenas) is not counted as a leak. */
    for (size_t s = 0; s < 5; s++) {
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB", strategies[s]);
        cycle(spec, "workload=read-seq", 1);
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d", strategies[s], srv_port);
        cycle(spec, "workload=read-seq", 1);
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d%s", strategies[s], srv_port, PREFETCH(s, 1));
        cycle(spec, "workload=read-seq", 1); /* glibc caches the stacks of its threads */
    }
    base = now_counts();
    base_taken = 1;
    return &base;
}

static void srv_shutdown(void)
{
    if (!srv_running)
        return;
    atomic_store(&srv_stop, 1);
    pthread_join(srv_thread, NULL);
    close(srv_listen);
    srv_running = 0;
}

static void counts_readable(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    CHECK(b->fds > 0 && b->tasks > 1 && b->maps > 0, "hygiene: /proc/self counts readable (%ld fds, %ld threads, %ld mappings)", b->fds,
          b->tasks, b->maps);
}

/* 1000 regions per strategy, local source: a run for three in four. */
static void local_regions_leave_nothing(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    char spec[256];
    for (size_t s = 0; s < 5; s++) {
        int bad = 0;
        for (int i = 0; i < 1000; i++) {
            snprintf(spec, sizeof spec, "strategy=%s region=64KiB chunk=%s", strategies[s], i % 2 ? "4KiB" : "16KiB");
            const char *run = i % 4 == 0   ? NULL
                              : i % 4 == 1 ? "workload=read-seq"
                              : i % 4 == 2 ? "workload=read-random seed=3"
                                           : "workload=first-chunk";
            bad += cycle(spec, run, 1) != 0;
        }
        CHECK(bad == 0, "hygiene: 1000 x %s (local source, runs and no-runs) all verified (%d bad; last: %.200s)", strategies[s], bad,
              bad ? out : "-");
        char what[96];
        snprintf(what, sizeof what, "hygiene: 1000 x %s create/destroy", strategies[s]);
        check_same(b, what);
    }
}

/* tcp source: 100 regions per strategy that pulls. */
static void tcp_regions_leave_nothing(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    char spec[256];
    for (size_t s = 0; s < 5; s++) {
        if (!lazy_or_eager[s])
            continue;
        int bad = 0;
        for (int i = 0; i < 100; i++) {
            snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d%s", strategies[s], srv_port, PREFETCH(s, i));
            bad += cycle(spec, i % 3 ? "workload=read-seq" : NULL, 1) != 0;
        }
        CHECK(bad == 0, "hygiene: 100 x %s over tcp (lazy ones: half with prefetch) verified (%d bad; last: %.200s)", strategies[s], bad,
              bad ? out : "-");
        char what[96];
        snprintf(what, sizeof what, "hygiene: 100 x %s over tcp", strategies[s]);
        check_same(b, what);
    }
}

/* Refused connections and bad specs: both fail before a strategy opens anything. */
static void failed_creates_leave_nothing(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    char spec[256];
    int bad = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d", strategies[i % 2], closed_port);
        bad += cycle(spec, NULL, -1) != 0;
        bad += cycle("strategy=uffd region=64KiB chunk=1000", NULL, -1) != 0;
    }
    CHECK(bad == 0, "hygiene: 100 refused connections and 100 bad specs fail at create (%d unexpected)", bad);
    check_same(b, "hygiene: failed creates");
}

static void reset_runs_leave_nothing(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    char spec[256];
    atomic_store(&srv_mode, SRV_RESET);
    int bad = 0;
    for (int i = 0; i < 150; i++) {
        size_t k = i % 3 == 2 ? 4 : (size_t)(i % 3);
        atomic_store(&srv_after, k == 4 ? 0 : 3); /* eager reads 64 KiB in one READ */
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d%s", strategies[k], srv_port, PREFETCH(k, i / 3));
        if (cycle(spec, "workload=read-seq", 0) != 0) {
            bad++;
            fprintf(stderr, "# reset run: %.200s\n", out);
        }
    }
    atomic_store(&srv_mode, SRV_OK);
    atomic_store(&srv_after, 3);
    CHECK(bad == 0, "hygiene: 150 runs cut by a connection reset (uffd, sigsegv, eager) all fail cleanly (%d unexpected)", bad);
    check_same(b, "hygiene: runs failed by a reset");
}

static void stalled_runs_leave_nothing(void)
{
    const struct counts *b = baseline();
    if (!b)
        return;
    char spec[256];
    atomic_store(&srv_mode, SRV_STALL);
    int bad = 0;
    for (int i = 0; i < 6; i++) {
        size_t k = i % 3 == 2 ? 4 : (size_t)(i % 3);
        atomic_store(&srv_after, k == 4 ? 0 : 3);
        snprintf(spec, sizeof spec, "strategy=%s region=64KiB source=tcp port=%d fetch_timeout_ms=50%s", strategies[k], srv_port,
                 PREFETCH(k, i / 3));
        if (cycle(spec, "workload=read-seq", 0) != 0 || !strstr(out, "timeout after 50 ms")) {
            bad++;
            fprintf(stderr, "# stall run: %.200s\n", out);
        }
    }
    atomic_store(&srv_mode, SRV_OK);
    atomic_store(&srv_after, 3);
    CHECK(bad == 0, "hygiene: 6 runs against a stalled server time out (%d unexpected)", bad);
    check_same(b, "hygiene: runs failed by a stall");
}

static const struct unit_test tests[] = {
    {"counts-readable", 0, counts_readable},
    {"local-regions-leave-nothing", NEED_UFFD | NEED_NO_TSAN, local_regions_leave_nothing},
    {"tcp-regions-leave-nothing", NEED_UFFD | NEED_NO_TSAN, tcp_regions_leave_nothing},
    {"failed-creates-leave-nothing", NEED_NO_TSAN, failed_creates_leave_nothing},
    {"reset-runs-leave-nothing", NEED_UFFD | NEED_NO_TSAN, reset_runs_leave_nothing},
    {"stalled-runs-leave-nothing", NEED_UFFD | NEED_NO_TSAN, stalled_runs_leave_nothing},
};

int main(int argc, char **argv)
{
    int rc = unit_main(argc, argv, tests, UNIT_COUNT(tests));
    srv_shutdown(); /* before exit, where LeakSanitizer looks */
    return rc;
}
