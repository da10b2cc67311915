/* The tcp source as an NBD client (sources/tcp.c, docs/protocol.md).
 *
 * Against test_server.h, which can misbehave on purpose: the handshake and
 * its checks (export size, faultlab's seed, export names, servers without
 * NBD_OPT_GO), replies out of order, a reply with an unknown cookie, server
 * errors, advertised block sizes, FLUSH as the RTT probe, NBD_CMD_DISC.
 *
 * Against nbdkit, a server faultlab did not write, where installed (each test
 * starts its own on a free loopback port and stops it; the test is a skip
 * without it): an image of the region's contents served by the file plugin,
 * plain and delayed (the delay filter), read by uffd and sigsegv with every
 * workload, every prefetch policy and every uffd install, verified; its
 * errors (the error filter) and block-size limits (the blocksize-policy
 * filter); and the push paths (write-track, migrate) against the memory
 * plugin, read back and compared. And against faultlab's own server
 * (fl_nbd_start). */
#include "../include/faultlab.h"
#include "unit.h"
#include "test_server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "run_json.h"

static const char *const lazy[] = {"uffd", "sigsegv"};

/* ---- against the test server --------------------------------------------------- */

static int start(struct tsrv *s, struct ts_opts o)
{
    if (!o.region)
        o.region = 4 << 20;
    if (!o.seed)
        o.seed = 1;
    int rc = ts_start_with(s, &o);
    CHECK(rc == 0, "the test NBD server starts");
    return rc;
}

static void handshake_go_checks_the_export(void)
{
    struct tsrv s;
    if (start(&s, (struct ts_opts){0}))
        return;
    char spec[256];
    for (size_t k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=4MiB", lazy[k], s.port);
        int rc = run(spec, "workload=read-random seed=2");
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") == 1024, "%s over NBD_OPT_GO: read-random verified %s", lazy[k],
              rc ? out : "");
    }
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=8MiB", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "server region is 4194304 bytes, smaller than this run's 8388608") && strstr(out, "--region 8388608"),
          "a region larger than the export is refused, naming both sizes (faultlab's server: the --region hint): %s", out);
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=4MiB seed=7", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "server seed is 1, expected 7"), "'faultlab seed=1' against seed=7 is refused: %s", out);
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "a region smaller than the export maps its prefix, verified");
    CHECK(atomic_load(&s.discs) >= 2, "each connection ends with NBD_CMD_DISC (%d seen)", atomic_load(&s.discs));
    ts_stop(&s);
}

static void other_description_verifies_bytes(void)
{
    struct tsrv s;
    struct ts_opts o = {.seed = 3};
    o.x.description = "an export of someone else's";
    if (start(&s, o))
        return;
    char spec[256];
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB seed=1", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && !jtrue(out, "verified") && jnum(out, "first_bad_offset") == 0,
          "a server without faultlab's description is not refused for its seed: the bytes are verified, and fail (%.120s)", out);
    ts_stop(&s);
}

static void export_names(void)
{
    struct tsrv s;
    struct ts_opts o = {0};
    o.x.name = "faultlab";
    if (start(&s, o))
        return;
    char spec[256];
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB export=faultlab", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "export=faultlab opens the export so named %s", rc ? out : "");
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB export=elsewhere", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "has no export named 'elsewhere'") && strstr(out, "the test server has another export"),
          "an unknown export is refused with the server's message: %s", out);
    ts_stop(&s);

    o.x.no_go = 1;
    if (start(&s, o))
        return;
    snprintf(spec, sizeof spec, "strategy=sigsegv source=tcp port=%d region=1MiB export=faultlab", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "a server answering NBD_OPT_GO with NBD_REP_ERR_UNSUP is reached with NBD_OPT_EXPORT_NAME %s",
          rc ? out : "");
    snprintf(spec, sizeof spec, "strategy=sigsegv source=tcp port=%d region=1MiB export=elsewhere", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "closed the connection after NBD_OPT_EXPORT_NAME"),
          "there, an unknown export (the server hangs up) is named: %s", out);
    ts_stop(&s);
}

/* Replies in another order than the requests: each lands in its own request's destination. */
static void out_of_order_replies(void)
{
    struct tsrv s;
    if (start(&s, (struct ts_opts){.reorder_ms = 4}))
        return;
    char spec[256];
    const char *policies[] = {"ahead:8", "background", "adaptive"};
    for (size_t k = 0; k < 2; k++)
        for (size_t p = 0; p < 3; p++) {
            snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=4MiB chunk=16KiB prefetch=%s depth=32 cpus=free", lazy[k],
                     s.port, policies[p]);
            int rc = run(spec, "workload=read-seq");
            CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "prefetched") == 256,
                  "%s prefetch=%s depth=32, replies out of order: verified, every chunk once %s", lazy[k], policies[p], rc ? out : "");
        }
    snprintf(spec, sizeof spec, "strategy=sigsegv source=tcp port=%d region=4MiB vma_span=16", s.port);
    int rc = run(spec, "workload=read-random seed=4");
    CHECK(rc == 0 && jtrue(out, "verified"), "sigsegv vma_span=16 (pipelined in the signal handler), out of order: verified %s",
          rc ? out : "");
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=4MiB chunk=16KiB prefetch=ahead:8 depth=16 client_rtt_us=3000",
             s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "the same with client_rtt_us=3000 (each answer held until its own due time): verified %s",
          rc ? out : "");
    CHECK(atomic_load(&s.reordered) > 0, "the server did answer out of order (%d replies before an earlier request's)",
          atomic_load(&s.reordered));
    ts_stop(&s);
}

static void unknown_cookie_is_an_error(void)
{
    struct tsrv s;
    if (start(&s, (struct ts_opts){.bad_cookie_after = 5}))
        return;
    char spec[256];
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "malformed response: a reply with cookie 0x5a5a") && strstr(out, "which no request in flight has") &&
              strstr(out, "offset 0x5000"),
          "a reply with a cookie no request has fails the fetch, naming it: %s", out);
    ts_stop(&s);
}

static void server_errors_name_errno_and_offset(void)
{
    struct tsrv s;
    if (start(&s, (struct ts_opts){.fail_error = NBD_EIO, .fail_off = 0x7000}))
        return;
    char spec[256];
    for (size_t k = 0; k < 2; k++)
        for (int p = 0; p < 2; p++) {
            snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=1MiB%s", lazy[k], s.port, p ? " prefetch=ahead:4" : "");
            int rc = run(spec, "workload=read-seq");
            /* With prefetch the engine's READ of several chunks may be the one that fails. */
            CHECK(rc == -1 && strstr(out, "server answered EIO to READ") && strstr(out, p ? "offset 0x" : "offset 0x7000"),
                  "%s%s: an EIO reply fails the run, naming EIO and the offset: %s", lazy[k], p ? " prefetch=ahead:4" : "", out);
        }
    ts_stop(&s);
    if (start(&s, (struct ts_opts){.fail_error = 99, .fail_off = 0}))
        return;
    snprintf(spec, sizeof spec, "strategy=eager source=tcp port=%d region=1MiB", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "server answered NBD error 99 to READ") && strstr(out, "offset 0x0"),
          "an error number NBD does not define is given as a number: %s", out);
    ts_stop(&s);
}

static void block_sizes_split_requests(void)
{
    struct tsrv s;
    struct ts_opts o = {0};
    o.x.max_block = 16384;
    if (start(&s, o))
        return;
    char spec[256];
    for (size_t k = 0; k < 2; k++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=4MiB chunk=256KiB prefetch=ahead:4", lazy[k], s.port);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified"), "%s, 256 KiB chunks, a 16 KiB maximum block: verified %s", lazy[k], rc ? out : "");
    }
    snprintf(spec, sizeof spec, "strategy=eager source=tcp port=%d region=4MiB", s.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "eager (1 MiB reads) verified %s", rc ? out : "");
    CHECK(atomic_load(&s.max_len) == 16384, "no request was longer than the advertised maximum (longest %d bytes)",
          atomic_load(&s.max_len));
    ts_stop(&s);

    o.x.min_block = 8192;
    if (start(&s, o))
        return;
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB chunk=4KiB", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "is not aligned to the server's minimum block size of 8192 bytes"),
          "4 KiB chunks against an 8 KiB minimum block are refused clearly: %s", out);
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB chunk=8KiB", s.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "8 KiB chunks there verify %s", rc ? out : "");
    ts_stop(&s);
}

static void ping_is_flush(void)
{
    struct tsrv s;
    if (start(&s, (struct ts_opts){.rtt_ms = 2}))
        return;
    char spec[256];
    snprintf(spec, sizeof spec, "port=%d region=4MiB op=ping requests=20", s.port);
    int rc = fl_transport(spec, out, sizeof out);
    long long p50 = jnum(out, "p50_ns");
    CHECK(rc == 0 && p50 >= 2000000 && atomic_load(&s.flushes) >= 20,
          "op=ping sends NBD_CMD_FLUSH (%d seen), each answered after the server's 2 ms (p50 %lld us)", atomic_load(&s.flushes),
          p50 / 1000);
    snprintf(spec, sizeof spec, "port=%d region=4MiB requests=64 chunk=64KiB", s.port);
    rc = fl_transport(spec, out, sizeof out);
    CHECK(rc == 0 && jtrue(out, "verified"), "the transport floor's READs verify %s", rc ? out : "");
    /* Each READ waits out the server's 2 ms: the client's CPU time is a small
     * part of the time inside the reads, not the time itself. */
    long long cpu = jnum(out, "cpu_ns"), inside = (long long)(64 * (double)jnum(out, "mean_ns"));
    CHECK(rc == 0 && cpu > 0 && cpu < inside / 4, "cpu_ns counts the client's CPU time inside the reads (%lld us), not their %lld us",
          cpu / 1000, inside / 1000);
    ts_stop(&s);
    if (start(&s, (struct ts_opts){0}))
        return;
    snprintf(spec, sizeof spec, "port=%d region=4MiB op=ping requests=20 client_rtt_us=3000", s.port);
    rc = fl_transport(spec, out, sizeof out);
    p50 = jnum(out, "p50_ns");
    CHECK(rc == 0 && p50 >= 3000000 && p50 < 3000000 + 5000000, "client_rtt_us=3000 holds each FLUSH's answer 3 ms (p50 %lld us)",
          p50 / 1000);
    ts_stop(&s);
}

/* ---- against faultlab's own NBD server (server/nbd_*.c) ---------------------------- */

static void faultlab_server(void)
{
    char err[256], spec[512];
    fl_nbd_server *srv = fl_nbd_start("region=8MiB seed=1 rtt_us=1000 log_fd=-1", err, sizeof err);
    CHECK(srv != NULL, "fl_nbd_start %s", srv ? "" : err);
    if (!srv)
        return;
    int port = fl_nbd_port(srv);
    for (size_t k = 0; k < 2; k++)
        for (int p = 0; p < 2; p++) {
            snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=8MiB chunk=16KiB%s", lazy[k], port,
                     p ? " prefetch=ahead:8 depth=16 cpus=free" : "");
            int rc = run(spec, "workload=read-random seed=3");
            CHECK(rc == 0 && jtrue(out, "verified"), "faultlab's server, 1 ms RTT: %s%s read-random verified %s", lazy[k],
                  p ? " prefetch=ahead:8" : "", rc ? out : "");
        }
    snprintf(spec, sizeof spec, "port=%d region=8MiB op=ping requests=20", port);
    int rc = fl_transport(spec, out, sizeof out);
    CHECK(rc == 0 && jnum(out, "p50_ns") >= 1000000, "faultlab's server: FLUSH round trips take its 1 ms RTT (p50 %lld us) %s",
          jnum(out, "p50_ns") / 1000, rc ? out : "");
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=16MiB", port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "server region is 8388608 bytes, smaller than this run's 16777216"),
          "faultlab's server: a larger region is refused, naming both sizes: %s", out);
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=1MiB seed=2", port);
    rc = run(spec, "workload=read-seq");
    CHECK((rc == -1 && strstr(out, "server seed is 1, expected 2")) || (rc == 0 && !jtrue(out, "verified")),
          "faultlab's server: seed=2 against its seed 1 is %s",
          rc ? out : "not refused (no 'faultlab seed=N' description), but fails verification");
    snprintf(spec, sizeof spec,
             "tracker=uffd-wp source=tcp port=%d region=8MiB chunk=16KiB pattern=random write_fraction=0.1 write_bytes=512 intervals=4",
             port);
    rc = fl_write_track(spec, out, sizeof out);
    CHECK(rc == 0 && jtrue(out, "verified"), "faultlab's server: write-track pushes, reads back, equal %s", rc ? out : "");
    fl_nbd_stop(srv);
}

/* ---- against nbdkit -------------------------------------------------------------- */

#define IMG_BYTES (16u << 20)

struct nbdkit {
    pid_t pid;
    int port;
    char log[64];
};

static pid_t running_nbdkit; /* killed at exit too, should a test stop early */

static void nbdkit_stop(struct nbdkit *k)
{
    if (k->pid <= 0)
        return;
    kill(k->pid, SIGTERM);
    int st;
    for (int i = 0; i < 500 && waitpid(k->pid, &st, WNOHANG) == 0; i++)
        usleep(10000);
    if (waitpid(k->pid, &st, WNOHANG) == 0) {
        kill(k->pid, SIGKILL);
        waitpid(k->pid, &st, 0);
    }
    running_nbdkit = k->pid = 0;
    unlink(k->log);
}

static void nbdkit_at_exit(void)
{
    if (running_nbdkit > 0) {
        kill(running_nbdkit, SIGKILL);
        waitpid(running_nbdkit, NULL, 0);
    }
}

static int nbdkit_installed(void)
{
    const char *path = getenv("PATH");
    char buf[4096], file[4200];
    snprintf(buf, sizeof buf, "%s", path ? path : "/usr/bin:/bin");
    for (char *save, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(file, sizeof file, "%s/nbdkit", d);
        if (access(file, X_OK) == 0)
            return 1;
    }
    return 0;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    int port = -1;
    if (fd >= 0 && !bind(fd, (struct sockaddr *)&a, sizeof a) && !getsockname(fd, (struct sockaddr *)&a, &alen))
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* nbdkit -f -i 127.0.0.1 -p PORT --exit-with-parent ARGS... on a free port.
 * 0 when it listens; otherwise a failed check with its log. */
static int nbdkit_start(struct nbdkit *k, const char *const *args)
{
    memset(k, 0, sizeof *k);
    for (int attempt = 0; attempt < 3; attempt++) {
        k->port = free_port();
        snprintf(k->log, sizeof k->log, "/tmp/faultlab-nbdkit-%d.log", (int)getpid());
        char port[16];
        snprintf(port, sizeof port, "%d", k->port);
        const char *argv[32] = {"nbdkit", "-f", "-i", "127.0.0.1", "-p", port, "--exit-with-parent"};
        int n = 7;
        for (int i = 0; args[i] && n < 31; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            CHECK(0, "nbdkit: fork: %s", strerror(errno));
            return -1;
        }
        if (pid == 0) { /* nbdkit wants stdin and stdout open (a test runner may have closed them) */
            int in = open("/dev/null", O_RDONLY), fd = open(k->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (in >= 0 && in != 0)
                dup2(in, 0);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execvp("nbdkit", (char *const *)argv);
            _exit(127);
        }
        k->pid = running_nbdkit = pid;
        for (int i = 0; i < 1000; i++) { /* up to 10 s */
            if (waitpid(pid, NULL, WNOHANG) == pid) {
                k->pid = running_nbdkit = 0;
                break;
            }
            if (port_open(k->port))
                return 0;
            usleep(10000);
        }
        if (k->pid)
            nbdkit_stop(k);
    }
    char log[512] = "";
    FILE *f = fopen(k->log, "r");
    if (f) {
        size_t n = fread(log, 1, sizeof log - 1, f);
        log[n] = 0;
        fclose(f);
    }
    unlink(k->log);
    CHECK(0, "nbdkit %s ... does not listen: %s", args[0], log);
    return -1;
}

/* The region's contents for seed 1, as a file nbdkit serves. */
static char img[64];

static int make_image(void)
{
    if (img[0])
        return 0;
    snprintf(img, sizeof img, "/tmp/faultlab-nbd-XXXXXX");
    int fd = mkstemp(img);
    uint8_t *buf = malloc(1 << 20);
    int ok = fd >= 0 && buf;
    for (uint64_t off = 0; ok && off < IMG_BYTES; off += 1 << 20) {
        fl_fill(buf, 1 << 20, 1, off);
        ok = write(fd, buf, 1 << 20) == 1 << 20;
    }
    free(buf);
    if (fd >= 0)
        close(fd);
    CHECK(ok, "an image of fl_fill(seed 1) for nbdkit (%s)", img);
    if (!ok) {
        unlink(img);
        img[0] = 0;
    }
    return ok ? 0 : -1;
}

/* Needs nbdkit; a skip without it. */
static int with_nbdkit(struct nbdkit *k, const char *const *args)
{
    if (!nbdkit_installed()) {
        unit_skip("nbdkit not installed (apt-get install nbdkit)");
        return -1;
    }
    if (make_image())
        return -1;
    return nbdkit_start(k, args);
}

static void nbdkit_workloads(void)
{
    struct nbdkit k;
    const char *args[] = {"file", img, NULL};
    if (with_nbdkit(&k, args))
        return;
    const char *w[] = {"workload=read-seq", "workload=read-random seed=5", "workload=first-chunk"};
    char spec[256];
    for (size_t s = 0; s < 2; s++)
        for (size_t i = 0; i < 3; i++) {
            snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=16MiB", lazy[s], k.port);
            int rc = run(spec, w[i]);
            CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "bytes_fetched") > 0, "nbdkit file: %s %s verified %s", lazy[s], w[i],
                  rc ? out : "");
        }
    snprintf(spec, sizeof spec, "strategy=eager source=tcp port=%d region=16MiB", k.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "nbdkit file: eager verified %s", rc ? out : "");
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=32MiB", k.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == -1 && strstr(out, "server region is 16777216 bytes, smaller than this run's 33554432"),
          "nbdkit file: a region larger than the image is refused, naming both sizes: %s", out);
    snprintf(spec, sizeof spec, "strategy=uffd source=tcp port=%d region=4MiB seed=2", k.port);
    rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && !jtrue(out, "verified"),
          "nbdkit says no seed: seed=2 against an image of seed 1 fails verification, not the handshake");
    snprintf(spec, sizeof spec, "port=%d region=16MiB requests=256 chunk=64KiB", k.port);
    rc = fl_transport(spec, out, sizeof out);
    CHECK(rc == 0 && jtrue(out, "verified"), "nbdkit file: the transport floor's READs verify %s", rc ? out : "");
    snprintf(spec, sizeof spec, "port=%d region=16MiB op=ping requests=50", k.port);
    rc = fl_transport(spec, out, sizeof out);
    CHECK(rc == 0 && jnum(out, "p50_ns") > 0, "nbdkit file: the RTT probe (FLUSH) answers (p50 %lld us) %s", jnum(out, "p50_ns") / 1000,
          rc ? out : "");
    nbdkit_stop(&k);
}

static void nbdkit_prefetch(void)
{
    struct nbdkit k;
    const char *args[] = {"file", img, NULL};
    if (with_nbdkit(&k, args))
        return;
    const char *policies[] = {"none", "ahead:8", "adaptive", "background", "criu"};
    const char *how[] = {"strategy=uffd uffd_install=copy", "strategy=uffd uffd_install=continue", "strategy=uffd uffd_install=move",
                         "strategy=sigsegv"};
    char spec[256];
    for (size_t h = 0; h < 4; h++)
        for (size_t p = 0; p < 5; p++)
            for (int w = 0; w < 2; w++) {
                snprintf(spec, sizeof spec, "%s source=tcp port=%d region=8MiB chunk=16KiB prefetch=%s depth=16 cpus=free", how[h], k.port,
                         policies[p]);
                int rc = run(spec, w ? "workload=read-random seed=3" : "workload=read-seq");
                if (h == 2 && rc == -1 && strstr(out, "UFFD_FEATURE_MOVE")) {
                    printf("# no UFFDIO_MOVE on this kernel: %s\n", out);
                    break;
                }
                CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "faults") + jnum(out, "prefetched") == 512,
                      "nbdkit file: %s prefetch=%s %s: verified, every chunk once %s", how[h], policies[p], w ? "read-random" : "read-seq",
                      rc ? out : "");
            }
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=8MiB chunk=16KiB prefetch=background", lazy[s], k.port);
        int rc = run(spec, "workload=first-chunk wait_fill=1");
        CHECK(rc == 0 && jtrue(out, "fill_verified"), "nbdkit file: %s background fills the whole region, verified %s", lazy[s],
              rc ? out : "");
    }
    nbdkit_stop(&k);
}

static void nbdkit_delayed(void)
{
    struct nbdkit k;
    const char *args[] = {"--filter=delay", "file", img, "delay-read=5ms", NULL};
    if (with_nbdkit(&k, args))
        return;
    char spec[256];
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=1MiB chunk=16KiB", lazy[s], k.port);
        int rc = run(spec, "workload=read-seq");
        double serial_ms = (double)jnum(out, "wall_ns") / 1e6;
        CHECK(rc == 0 && jtrue(out, "verified") && serial_ms >= 64 * 5, "nbdkit delay-read=5ms: %s, 64 faults one after another in %.0f ms",
              lazy[s], serial_ms);
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=1MiB chunk=16KiB prefetch=background depth=16 cpus=free",
                 lazy[s], k.port);
        rc = run(spec, "workload=read-seq");
        double ms = (double)jnum(out, "wall_ns") / 1e6;
        CHECK(rc == 0 && jtrue(out, "verified") && ms < serial_ms / 2, "nbdkit delay-read=5ms: %s background depth=16 in %.0f ms", lazy[s],
              ms);
    }
    nbdkit_stop(&k);
}

static void nbdkit_errors(void)
{
    struct nbdkit k;
    const char *args[] = {"--filter=error", "file", img, "error-pread=EIO", "error-pread-rate=100%", NULL};
    if (with_nbdkit(&k, args))
        return;
    char spec[256];
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=1MiB", lazy[s], k.port);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == -1 && strstr(out, "server answered EIO to READ of 4096 bytes at offset 0x0"),
              "nbdkit error filter: %s fails, naming EIO and the offset: %s", lazy[s], out);
    }
    nbdkit_stop(&k);
}

static void nbdkit_block_sizes(void)
{
    struct nbdkit k;
    const char *args[] = {
        "--filter=blocksize-policy",    "file", img, "blocksize-minimum=4096", "blocksize-preferred=4096", "blocksize-maximum=65536",
        "blocksize-error-policy=error", NULL};
    if (with_nbdkit(&k, args))
        return;
    char spec[256];
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec, "strategy=%s source=tcp port=%d region=8MiB chunk=256KiB prefetch=ahead:4", lazy[s], k.port);
        int rc = run(spec, "workload=read-seq");
        CHECK(rc == 0 && jtrue(out, "verified"), "nbdkit, a 64 KiB maximum block enforced: %s with 256 KiB chunks verified %s", lazy[s],
              rc ? out : "");
    }
    snprintf(spec, sizeof spec, "strategy=eager source=tcp port=%d region=8MiB", k.port);
    int rc = run(spec, "workload=read-seq");
    CHECK(rc == 0 && jtrue(out, "verified"), "nbdkit, a 64 KiB maximum block enforced: eager (1 MiB reads) verified %s", rc ? out : "");
    nbdkit_stop(&k);
}

static void nbdkit_write_track(void)
{
    struct nbdkit k;
    const char *args[] = {"memory", "16M", NULL};
    if (with_nbdkit(&k, args))
        return;
    const char *trackers[] = {"uffd-wp", "uffd-wp-async", "mprotect", "soft-dirty"};
    char spec[512];
    for (size_t i = 0; i < 4; i++) {
        snprintf(spec, sizeof spec,
                 "tracker=%s source=tcp port=%d region=8MiB chunk=16KiB pattern=random write_fraction=0.1 write_bytes=512 intervals=4",
                 trackers[i], k.port);
        int rc = fl_write_track(spec, out, sizeof out);
        if (rc && (strstr(out, "CONFIG_MEM_SOFT_DIRTY") || strstr(out, "needs WP_ASYNC"))) {
            printf("# %s refused by this kernel: %s\n", trackers[i], out);
            continue;
        }
        CHECK(rc == 0 && jtrue(out, "verified") && jnum(out, "missed_chunks") == 0,
              "nbdkit memory: write-track tracker=%s pushes, reads back, equal %s", trackers[i], rc ? out : "");
    }
    nbdkit_stop(&k);
}

/* Migrate, both halves one after the other: the source's pre-copy rounds and
 * cut-over push to nbdkit, then a destination pulls and compares. (Not under
 * ThreadSanitizer: the writer races the pre-copy pushes on purpose.) */
static void nbdkit_migrate(void)
{
    struct nbdkit k;
    const char *args[] = {"memory", "16M", NULL};
    if (with_nbdkit(&k, args))
        return;
    char spec[512];
    for (size_t s = 0; s < 2; s++) {
        snprintf(spec, sizeof spec,
                 "tracker=uffd-wp source=tcp port=%d region=4MiB chunk=16KiB pattern=random write_fraction=0.05 period_ms=2", k.port);
        int rc = fl_migrate_source(spec, out, sizeof out);
        long long intervals = jnum(out, "intervals_written");
        CHECK(rc == 0 && intervals > 0, "nbdkit memory: migrate's source pushes and cuts over after %lld intervals %s", intervals,
              rc ? out : "");
        if (rc)
            continue;
        char rspec[256], err[256];
        snprintf(rspec, sizeof rspec, "strategy=%s source=tcp port=%d region=4MiB chunk=16KiB", lazy[s], k.port);
        fl_region *r = fl_region_create(rspec, err, sizeof err);
        CHECK(r != NULL, "nbdkit memory: a %s destination region %s", lazy[s], r ? "" : err);
        if (!r)
            continue;
        snprintf(spec, sizeof spec, "pattern=random write_fraction=0.05 intervals=%lld", intervals);
        rc = fl_migrate_dest(r, spec, out, sizeof out);
        CHECK(rc == 0 && jtrue(out, "verified"), "nbdkit memory: the %s destination equals the source %s", lazy[s], rc ? out : "");
        fl_region_destroy(r);
    }
    nbdkit_stop(&k);
}

static const struct unit_test tests[] = {
    {"handshake-go-checks-the-export", NEED_UFFD, handshake_go_checks_the_export},
    {"other-description-verifies-bytes", NEED_UFFD, other_description_verifies_bytes},
    {"export-names-and-old-servers", NEED_UFFD, export_names},
    {"out-of-order-replies", NEED_UFFD, out_of_order_replies},
    {"unknown-cookie-is-an-error", NEED_UFFD, unknown_cookie_is_an_error},
    {"server-errors-name-errno-and-offset", NEED_UFFD, server_errors_name_errno_and_offset},
    {"block-sizes-split-requests", NEED_UFFD, block_sizes_split_requests},
    {"ping-is-flush", 0, ping_is_flush},
    {"faultlab-server", NEED_UFFD, faultlab_server},
    {"nbdkit-workloads", NEED_UFFD, nbdkit_workloads},
    {"nbdkit-prefetch-policies-and-installs", NEED_UFFD, nbdkit_prefetch},
    {"nbdkit-delayed", NEED_UFFD, nbdkit_delayed},
    {"nbdkit-errors", NEED_UFFD, nbdkit_errors},
    {"nbdkit-block-sizes", NEED_UFFD, nbdkit_block_sizes},
    {"nbdkit-write-track", NEED_UFFD, nbdkit_write_track},
    {"nbdkit-migrate", NEED_UFFD | NEED_NO_TSAN, nbdkit_migrate},
};

int main(int argc, char **argv)
{
    atexit(nbdkit_at_exit);
    int rc = unit_main(argc, argv, tests, UNIT_COUNT(tests));
    if (img[0])
        unlink(img);
    return rc;
}
