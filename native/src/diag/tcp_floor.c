/* fl_tcp_floor: the network floor, with no NBD in it. A minimal C TCP pair on
 * loopback: the client sends a fixed 28-byte request header (the size of an NBD
 * request), the server answers with `bytes` bytes from a prefilled buffer, and
 * the client times each round trip until the last byte is in. Neither side
 * parses anything, so `faultlab targets remote` can compare the NBD server and
 * client (and the fault path around them) with what TCP alone costs here.
 *
 * Placement as the remote benchmark's: the client thread is pinned per cpus=
 * (as the tcp source's workload and handler threads are); the server thread
 * to server_cpu= when given (as the NBD server's threads to its cpu=), else
 * nowhere. Both sockets TCP_NODELAY, kernel default buffers. The reply bytes
 * are fl_fill(1, 0..bytes), verified after each round trip (untimed). The
 * server and the round trip also serve fl_floors fetch=tcp (tcp_floor.h).
 */
#include "core/internal.h"
#include "diag/tcp_floor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define TF_WARMUP      16 /* untimed round trips first: a fresh connection is slower */
#define TF_MAX_BYTES   (64ull << 20)
#define TF_TIMEOUT_SEC 10 /* per send/recv: a stuck peer fails the floor, never hangs it */
#define TF_STR_(x)     #x
#define TF_STR(x)      TF_STR_(x)

struct tf_args {
    uint64_t bytes, requests;
    enum fl_cpus cpus;
    int server_cpu; /* -1: unpinned, as the NBD server's threads are by default */
};

struct tf_server {
    uint64_t bytes, span;
    int cpu, listen_fd, port;
    uint8_t *replies; /* span bytes */
    pthread_t thread;
    char err[FL_ERR_LEN]; /* the server thread's failure, if any */
};

static int tf_timeouts(int fd)
{
    struct timeval tv = {.tv_sec = TF_TIMEOUT_SEC};
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) ||
           setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* 1 when all len bytes moved, 0 at end of stream (recv, before any byte), -1 on error. */
static int tf_full(int fd, void *buf, size_t len, bool sending)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = sending ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL) : recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n == 0 && done == 0 && !sending ? 0 : -1;
        done += (size_t)n;
    }
    return 1;
}

const char *tf_strerror(int e)
{
    if (!e)
        return "connection closed";
    if (e == EAGAIN || e == EWOULDBLOCK) /* SO_RCVTIMEO / SO_SNDTIMEO ran out */
        return "no progress within " TF_STR(TF_TIMEOUT_SEC) " s";
    return strerror(e);
}

int tf_send_request(int fd, uint64_t index)
{
    uint8_t hdr[TF_HEADER] = {0};
    memcpy(hdr + 16, &index, sizeof index); /* where NBD's offset would be */
    return tf_full(fd, hdr, sizeof hdr, true) < 0 ? -1 : 0;
}

int tf_recv_reply(int fd, void *buf, uint64_t bytes)
{
    errno = 0; /* stays 0 when the server closed, before or within the reply */
    return tf_full(fd, buf, bytes, false) == 1 ? 0 : -1;
}

int tf_round_trip(int fd, uint64_t index, void *buf, uint64_t bytes)
{
    return tf_send_request(fd, index) || tf_recv_reply(fd, buf, bytes) ? -1 : 0;
}

/* Answers every header with its reply until the client closes. */
static void *tf_server_main(void *arg)
{
    struct tf_server *s = arg;
    if (s->cpu < 0)
        fl_pin_cpu(-1); /* unpinned: not wherever the thread that started it was pinned */
    int fd = accept4(s->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    uint8_t hdr[TF_HEADER];
    uint64_t nreplies = s->span / s->bytes;
    if (fd < 0 || tf_timeouts(fd)) {
        snprintf(s->err, sizeof s->err, "server: %s", fd < 0 ? strerror(errno) : "setsockopt failed");
        goto out;
    }
    for (;;) {
        errno = 0;
        int r = tf_full(fd, hdr, sizeof hdr, false);
        if (r == 0)
            break;
        uint64_t index;
        memcpy(&index, hdr + 16, sizeof index);
        if (r < 0 || tf_full(fd, s->replies + index % nreplies * s->bytes, s->bytes, true) < 0) {
            snprintf(s->err, sizeof s->err, "server: %s", tf_strerror(errno));
            break;
        }
    }
out:
    if (fd >= 0)
        close(fd);
    return NULL;
}

struct tf_server *tf_server_start(uint64_t bytes, uint64_t span, int cpu, char *err, size_t errlen)
{
    struct tf_server *s = calloc(1, sizeof *s);
    uint8_t *replies = s ? malloc(span) : NULL;
    if (!replies) {
        fl_errf(err, errlen, "tcp floor: out of memory for %llu bytes of replies", (unsigned long long)span);
        free(s);
        return NULL;
    }
    fl_fill(replies, span, 1, 0);
    *s = (struct tf_server){.bytes = bytes, .span = span, .cpu = cpu, .replies = replies};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t salen = sizeof sa;
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&sa, sizeof sa) || listen(s->listen_fd, 1) ||
        getsockname(s->listen_fd, (struct sockaddr *)&sa, &salen)) {
        fl_errf(err, errlen, "tcp floor: cannot listen on loopback: %s", strerror(errno));
        goto fail;
    }
    s->port = ntohs(sa.sin_port);
    int e = fl_thread_start_on(&s->thread, cpu, tf_server_main, s); /* cpu < 0: it unpins itself */
    if (e) {
        fl_errf(err, errlen, "tcp floor: cannot start the server thread%s: %s", cpu >= 0 ? " on that CPU" : "", strerror(e));
        goto fail;
    }
    return s;
fail:
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    free(replies);
    free(s);
    return NULL;
}

int tf_server_port(const struct tf_server *s)
{
    return s->port;
}

int tf_server_stop(struct tf_server *s, char *err, size_t errlen)
{
    shutdown(s->listen_fd, SHUT_RDWR); /* wakes an accept that no client came to */
    pthread_join(s->thread, NULL);
    close(s->listen_fd);
    int rc = 0;
    if (s->err[0]) {
        fl_errf(err, errlen, "tcp floor: %s", s->err);
        rc = -1;
    }
    free(s->replies);
    free(s);
    return rc;
}

int tf_connect(int port, char *err, size_t errlen)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) || tf_timeouts(fd)) {
        fl_errf(err, errlen, "tcp floor: cannot connect on loopback: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static int tf_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct tf_args *a = ctx;
    if (!strcmp(k, "bytes")) {
        if (fl_parse_u64(v, 8, TF_MAX_BYTES, &a->bytes) || a->bytes % 8) {
            fl_errf(err, errlen, "tcp floor spec: bytes must be a multiple of 8 from 8 to %llu, got '%s'", TF_MAX_BYTES, v);
            return -1;
        }
    } else if (!strcmp(k, "requests")) {
        if (fl_parse_u64(v, 1, 10000000, &a->requests)) {
            fl_errf(err, errlen, "tcp floor spec: requests must be 1 to 10000000, got '%s'", v);
            return -1;
        }
    } else if (!strcmp(k, "cpus")) {
        return fl_parse_cpus_key("tcp floor spec", v, &a->cpus, err, errlen);
    } else if (!strcmp(k, "server_cpu")) {
        return fl_parse_cpu_key("tcp floor spec", k, v, &a->server_cpu, err, errlen);
    } else {
        fl_errf(err, errlen, "tcp floor spec: unknown key '%s' (keys: bytes, requests, cpus, server_cpu)", k);
        return -1;
    }
    return 0;
}

struct tf_client {
    struct tf_args *a;
    int port;
    char *out;
    size_t outlen;
    int rc;
};

/* The client, on its own (pinned) thread: the caller's thread is never pinned. */
static void *tf_client_main(void *arg)
{
    struct tf_client *c = arg;
    struct tf_args *a = c->a;
    struct fl_samples s = {0};
    uint8_t *buf = malloc(a->bytes);
    uint64_t total = 0, bad = 0, first_bad;
    c->rc = -1;
    fl_pin_cpu(fl_cpu_for(a->cpus, false));
    int fd = -1;
    if (!buf || fl_samples_init(&s, a->requests)) {
        fl_errf(c->out, c->outlen, "tcp floor: out of memory");
        goto out;
    }
    if ((fd = tf_connect(c->port, c->out, c->outlen)) < 0)
        goto out;
    for (uint64_t i = 0; i < TF_WARMUP + a->requests; i++) {
        uint64_t t0 = fl_now();
        if (tf_round_trip(fd, i, buf, a->bytes)) { /* i: no two requests alike */
            fl_errf(c->out, c->outlen, "tcp floor: round trip %llu: %s", (unsigned long long)i + 1, tf_strerror(errno));
            goto out;
        }
        uint64_t dt = fl_now() - t0;
        if (i >= TF_WARMUP) {
            total += dt;
            fl_samples_add(&s, dt);
        }
        bad += fl_verify(buf, a->bytes, 1, 0, &first_bad);
    }
    snprintf(c->out, c->outlen,
             "{\"bytes\":%llu,\"header_bytes\":%d,\"cpus\":\"%s\",\"n\":%llu,\"p50_ns\":%llu,\"p5_ns\":%llu,\"p95_ns\":%llu,"
             "\"min_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f,\"throughput_mibps\":%.3f,\"verified\":%s}",
             (unsigned long long)a->bytes, TF_HEADER, fl_cpus_name(a->cpus), (unsigned long long)a->requests,
             (unsigned long long)fl_samples_quantile(&s, 0.5), (unsigned long long)fl_samples_quantile(&s, 0.05),
             (unsigned long long)fl_samples_quantile(&s, 0.95), (unsigned long long)fl_samples_quantile(&s, 0.0),
             (unsigned long long)fl_samples_quantile(&s, 1.0), (double)total / (double)a->requests,
             total ? (double)(a->requests * a->bytes) / (1 << 20) / ((double)total / 1e9) : 0.0, bad ? "false" : "true");
    c->rc = 0;
out:
    if (fd >= 0)
        close(fd); /* the server sees the end of stream and returns */
    fl_samples_free(&s);
    free(buf);
    return NULL;
}

int fl_tcp_floor(const char *spec, char *out, size_t outlen)
{
    struct tf_args a = {.bytes = 4096, .requests = 1000, .cpus = FL_CPUS_SAME, .server_cpu = -1};
    if (fl_spec_each(spec, "tcp floor spec", tf_key, &a, out, outlen))
        return -1;
    struct tf_server *server = tf_server_start(a.bytes, a.bytes, a.server_cpu, out, outlen);
    if (!server)
        return -1;
    struct tf_client c = {.a = &a, .port = tf_server_port(server), .out = out, .outlen = outlen, .rc = -1};
    pthread_t client;
    if (pthread_create(&client, NULL, tf_client_main, &c))
        fl_errf(out, outlen, "tcp floor: cannot start the client thread");
    else
        pthread_join(client, NULL);
    char err[FL_ERR_LEN];
    if (tf_server_stop(server, err, sizeof err) && c.rc == 0) {
        fl_errf(out, outlen, "%s", err);
        return -1;
    }
    return c.rc;
}
