/* fl_stream_floor: what a pipelined pull into UFFDIO_COPY can reach here, with
 * no NBD and no faultlab strategy in it (faultlab.h). Set beside the uffd
 * strategy's 1 MiB sequential read with prefetch (`faultlab targets remote`):
 * the same work on the same CPUs (receive each chunk, copy it into fresh
 * pages, let the application copy and verify it) and nothing else: no fault
 * messages read, no chunk states, no engine. With window=0 (the default) the
 * handler keeps `ahead` requests in flight and gets as far ahead of the
 * application as it can; window=W holds it to a sliding window instead, as a
 * prefetch policy's holds the engine back: no request for a chunk more than W
 * past the one the application reads (which it publishes, and wakes the
 * handler with when that waits for it).
 *
 * The handler thread streams the region in order from fl_tcp_floor's server:
 * `ahead` requests in flight; each reply is received into one buffer, the
 * next request goes out, then UFFDIO_COPY installs the chunk (which wakes the
 * application if it is already waiting there). The application thread reads
 * each chunk as the workloads' access loop does. Threads placed as the tcp
 * source's (cpus=), the server as the NBD server's (server_cpu=).
 *
 * cpu_ns is the client's CPU time (application and handler threads, each over
 * its loop), to set beside a strategy row's client_cpu_ns: at cpus=same it is
 * what the pull costs the one CPU the client has.
 */
#include "core/internal.h"
#include "core/uffd_open.h"
#include "diag/tcp_floor.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SF_MAX_CHUNK (64ull << 20)
#define SF_MAX_AHEAD 16
#define SF_MAX_SPAN  64
#define SF_ALL       UINT32_MAX /* a position that opens any window */

struct sf_run {
    uint64_t region, chunk, n;
    uint64_t ahead, window; /* window 0: none */
    uint64_t span; /* distinct chunks the server answers with, in turn */
    _Atomic uint32_t pos; /* the chunk the application reads (futex word) */
    atomic_int handler_waits; /* the handler sleeps on pos */
    uint64_t max_lead; /* the most chunks a request went out ahead of pos */
    enum fl_cpus cpus;
    int server_cpu;
    int uffd, fd;
    uint8_t *base;
    struct fl_samples install_ns;
    uint64_t handler_cpu_ns; /* the handler thread's CPU time over its stream */
    char err[FL_ERR_LEN]; /* the handler's failure, if any */
};

static int sf_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct sf_run *f = ctx;
    uint64_t *dst = !strcmp(k, "region")   ? &f->region
                    : !strcmp(k, "chunk")  ? &f->chunk
                    : !strcmp(k, "ahead")  ? &f->ahead
                    : !strcmp(k, "window") ? &f->window
                    : !strcmp(k, "span")   ? &f->span
                                           : NULL;
    if (dst) {
        uint64_t min = dst == &f->window ? 0 : 1;
        uint64_t max = dst == &f->ahead || dst == &f->window ? SF_MAX_AHEAD
                       : dst == &f->span                     ? SF_MAX_SPAN
                       : dst == &f->chunk                    ? SF_MAX_CHUNK
                                                             : UINT64_MAX / 2;
        if (fl_parse_u64(v, min, max, dst)) {
            fl_errf(err, errlen, "stream floor spec: %s must be %llu to %llu, got '%s'", k, (unsigned long long)min,
                    (unsigned long long)max, v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "cpus"))
        return fl_parse_cpus_key("stream floor spec", v, &f->cpus, err, errlen);
    if (!strcmp(k, "server_cpu"))
        return fl_parse_cpu_key("stream floor spec", k, v, &f->server_cpu, err, errlen);
    fl_errf(err, errlen, "stream floor spec: unknown key '%s' (keys: region, chunk, ahead, window, span, cpus, server_cpu)", k);
    return -1;
}

/* Send what may go out with `received` answers in: up to `ahead` in flight,
 * none past the window. */
static int sf_pump(struct sf_run *f, uint64_t received, uint64_t *sent)
{
    for (;;) {
        uint64_t pos = atomic_load(&f->pos);
        if (*sent >= f->n || *sent - received >= f->ahead || (f->window && *sent > pos + f->window))
            return 0;
        if (*sent > pos && *sent - pos > f->max_lead)
            f->max_lead = *sent - pos;
        if (tf_send_request(f->fd, (*sent)++))
            return -1;
    }
}

/* Moves the application's position and wakes the handler if it waits for it. */
static void sf_publish(struct sf_run *f, uint32_t pos)
{
    atomic_store(&f->pos, pos);
    if (atomic_load(&f->handler_waits))
        syscall(SYS_futex, &f->pos, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

/* Chunk i is not asked for yet: the window waits for the application to move
 * (it reads chunks below i, all installed, so it does; one that stops opens
 * the window, sf_publish(SF_ALL)). 0, -1 when a send failed (errno), -2 when
 * the application did not move for 10 s. */
static int sf_wait_window(struct sf_run *f, uint64_t i, uint64_t *sent)
{
    while (*sent <= i) {
        atomic_store(&f->handler_waits, 1);
        uint32_t seen = atomic_load(&f->pos);
        if (*sent > seen + f->window) { /* still closed: sleep until pos moves (bounded, never hangs) */
            struct timespec ts = {.tv_sec = 10};
            if (syscall(SYS_futex, &f->pos, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0) < 0 && errno == ETIMEDOUT) {
                atomic_store(&f->handler_waits, 0);
                return -2;
            }
        }
        atomic_store(&f->handler_waits, 0);
        if (sf_pump(f, i, sent))
            return -1;
    }
    return 0;
}

static void *sf_handler(void *arg)
{
    struct sf_run *f = arg;
    fl_pin_cpu(fl_cpu_for(f->cpus, true));
    uint8_t *buf = malloc(f->chunk);
    uint64_t sent = 0;
    if (!buf) {
        snprintf(f->err, sizeof f->err, "out of memory for a %llu-byte buffer", (unsigned long long)f->chunk);
        goto fail;
    }
    memset(buf, 0, f->chunk); /* faulted in before the stream starts, as the engine's pool */
    uint64_t cpu0 = fl_thread_cpu_ns();
    for (uint64_t i = 0; i < f->n; i++) {
        if (sf_pump(f, i, &sent))
            goto net;
        int w = sf_wait_window(f, i, &sent);
        if (w == -2) {
            snprintf(f->err, sizeof f->err, "the application did not move for 10 s");
            goto fail;
        }
        if (w)
            goto net;
        if (tf_recv_reply(f->fd, buf, f->chunk) || sf_pump(f, i + 1, &sent)) /* the next requests go out before the install */
            goto net;
        uint64_t t0 = fl_now();
        struct uffdio_copy c = {.dst = (uintptr_t)(f->base + i * f->chunk), .src = (uintptr_t)buf, .len = f->chunk};
        while (ioctl(f->uffd, UFFDIO_COPY, &c) < 0) {
            if (errno != EAGAIN || c.copy <= 0) {
                snprintf(f->err, sizeof f->err, "UFFDIO_COPY of chunk %llu: %s", (unsigned long long)i, strerror(errno));
                goto fail;
            }
            c.dst += (uint64_t)c.copy; /* a partial copy: go on from where it stopped */
            c.src += (uint64_t)c.copy;
            c.len -= (uint64_t)c.copy;
            c.copy = 0;
        }
        fl_samples_add(&f->install_ns, fl_now() - t0);
    }
    f->handler_cpu_ns = fl_thread_cpu_ns() - cpu0;
    free(buf);
    return NULL;
net:
    snprintf(f->err, sizeof f->err, "the stream from the server: %s", tf_strerror(errno));
fail:
    free(buf);
    /* Unregistering wakes the application if it waits; it then reads zero
     * pages, which do not verify. */
    struct uffdio_range r = {.start = (uintptr_t)f->base, .len = f->region};
    ioctl(f->uffd, UFFDIO_UNREGISTER, &r);
    return NULL;
}

struct sf_app {
    struct sf_run *f;
    uint64_t total_ns, bad;
    uint64_t cpu_ns; /* over the access loop, timed and untimed parts alike */
    int rc;
};

/* The workloads' access loop over the region, in order. */
static void *sf_app_main(void *arg)
{
    struct sf_app *a = arg;
    struct sf_run *f = a->f;
    fl_pin_cpu(fl_cpu_for(f->cpus, false));
    uint8_t *scratch = malloc(f->chunk);
    if (!scratch) {
        sf_publish(f, SF_ALL); /* the handler goes on alone */
        return NULL;
    }
    memset(scratch, 0, f->chunk);
    uint64_t cpu0 = fl_thread_cpu_ns();
    for (uint64_t i = 0; i < f->n; i++) {
        sf_publish(f, (uint32_t)i);
        uint64_t t0 = fl_now();
        memcpy(scratch, f->base + i * f->chunk, f->chunk);
        a->total_ns += fl_now() - t0;
        uint64_t first_bad;
        a->bad += fl_verify(scratch, f->chunk, 1, i % f->span * f->chunk, &first_bad); /* the server answers chunk i with i % span */
    }
    a->cpu_ns = fl_thread_cpu_ns() - cpu0;
    free(scratch);
    a->rc = 0;
    return NULL;
}

int fl_stream_floor(const char *spec, char *out, size_t outlen)
{
    struct sf_run f = {
        .region = 256ull << 20, .chunk = 1 << 20, .ahead = 2, .span = 1, .cpus = FL_CPUS_SAME, .server_cpu = -1, .uffd = -1, .fd = -1};
    if (fl_spec_each(spec, "stream floor spec", sf_key, &f, out, outlen))
        return -1;
    uint64_t page = (uint64_t)sysconf(_SC_PAGESIZE);
    if (f.chunk % page || f.region % f.chunk) {
        fl_errf(out, outlen, "stream floor spec: chunk must be a multiple of the page size (%llu) and region a multiple of chunk",
                (unsigned long long)page);
        return -1;
    }
    f.n = f.region / f.chunk;
    if (f.span > f.n) {
        fl_errf(out, outlen, "stream floor spec: span (%llu chunks) must not exceed the region (%llu chunks)", (unsigned long long)f.span,
                (unsigned long long)f.n);
        return -1;
    }
    if (f.n > UINT32_MAX) {
        fl_errf(out, outlen, "stream floor spec: at most %u chunks", UINT32_MAX);
        return -1;
    }
    const char *how = NULL;
    int rc = -1;
    struct tf_server *server = NULL;
    if (fl_samples_init(&f.install_ns, f.n)) {
        fl_errf(out, outlen, "stream floor: out of memory");
        return -1;
    }
    if ((f.uffd = fl_uffd_open(&how, out, outlen)) < 0)
        goto done;
    struct uffdio_api api = {.api = UFFD_API};
    void *m = mmap(NULL, f.region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        fl_errf(out, outlen, "stream floor: cannot map %llu bytes: %s", (unsigned long long)f.region, strerror(errno));
        goto done;
    }
    f.base = m;
    madvise(f.base, f.region, MADV_NOHUGEPAGE); /* UFFDIO_COPY installs small pages anyway */
    struct uffdio_register reg = {.range = {.start = (uintptr_t)f.base, .len = f.region}, .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(f.uffd, UFFDIO_API, &api) || ioctl(f.uffd, UFFDIO_REGISTER, &reg)) {
        fl_errf(out, outlen, "stream floor: userfaultfd set-up: %s", strerror(errno));
        goto done;
    }
    if (!(server = tf_server_start(f.chunk, f.span * f.chunk, f.server_cpu, out, outlen)) ||
        (f.fd = tf_connect(tf_server_port(server), out, outlen)) < 0)
        goto done;
    struct sf_app app = {.f = &f, .rc = -1};
    pthread_t handler, reader;
    uint64_t wall0 = fl_now(); /* around both threads, as their CPU clocks are */
    if (pthread_create(&handler, NULL, sf_handler, &f)) {
        fl_errf(out, outlen, "stream floor: cannot start the handler thread");
        goto done;
    }
    bool app_started = pthread_create(&reader, NULL, sf_app_main, &app) == 0;
    if (app_started)
        pthread_join(reader, NULL);
    else
        sf_publish(&f, SF_ALL); /* the handler goes on alone: it installs the whole region and ends */
    pthread_join(handler, NULL);
    uint64_t wall_ns = fl_now() - wall0;
    if (!app_started || app.rc) {
        fl_errf(out, outlen, "stream floor: %s",
                app_started ? "out of memory for the application's scratch" : "cannot start the application thread");
        goto done;
    }
    if (f.err[0]) {
        fl_errf(out, outlen, "stream floor: handler: %s", f.err);
        goto done;
    }
    double mibps = app.total_ns ? (double)f.region / (1 << 20) / ((double)app.total_ns / 1e9) : 0;
    int k = snprintf(out, outlen,
                     "{\"region\":%llu,\"chunk\":%llu,\"ahead\":%llu,\"window\":%llu,\"max_lead\":%llu,\"cpus\":\"%s\",\"server_cpu\":%d,"
                     "\"throughput_mibps\":%.3f,\"total_ns\":%llu,\"wall_ns\":%llu,\"cpu_ns\":%llu,\"app_cpu_ns\":%llu,"
                     "\"handler_cpu_ns\":%llu,\"install_ns_p50\":%llu,\"verified\":%s,\"uffd_path\":\"%s\"}",
                     (unsigned long long)f.region, (unsigned long long)f.chunk, (unsigned long long)f.ahead, (unsigned long long)f.window,
                     (unsigned long long)f.max_lead, fl_cpus_name(f.cpus), f.server_cpu, mibps, (unsigned long long)app.total_ns,
                     (unsigned long long)wall_ns, (unsigned long long)(app.cpu_ns + f.handler_cpu_ns), (unsigned long long)app.cpu_ns,
                     (unsigned long long)f.handler_cpu_ns, (unsigned long long)fl_samples_quantile(&f.install_ns, 0.5),
                     app.bad ? "false" : "true", how);
    if (k < 0 || (size_t)k >= outlen)
        fl_errf(out, outlen, "stream floor: output buffer too small");
    else
        rc = 0;
done:
    if (f.fd >= 0)
        close(f.fd); /* the server sees the end of stream and returns */
    if (server) {
        char err[FL_ERR_LEN];
        if (tf_server_stop(server, err, sizeof err) && rc == 0) {
            fl_errf(out, outlen, "stream floor: %s", err);
            rc = -1;
        }
    }
    if (f.base)
        munmap(f.base, f.region);
    if (f.uffd >= 0)
        close(f.uffd);
    fl_samples_free(&f.install_ns);
    return rc;
}
