/* The platform's share of an RTT error. A minimal chunk server in C on a thread
 * of this process answers HELLO and PING, each PING `rtt_us` after it was read,
 * waiting precisely (clock_nanosleep to 250 us before the deadline, then
 * spinning); the same C client as everywhere (the tcp source) times the round
 * trips. No Node.js, no event loop, no timers shared with anything: an error
 * this control shows as well is the machine's (waking a thread, a socket path
 * gone cold after ms without traffic), not the chunk server's. */
#include "core/internal.h"
#include "sources/protocol.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct control {
    int listen_fd;
    uint64_t rtt_ns, region, seed;
    uint64_t late_sum_ns, answers; /* answer sent minus deadline */
};

static int recv_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len) {
        ssize_t k = recv(fd, p, len, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        len -= (size_t)k;
    }
    return 0;
}

static void serve(struct control *c, int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    for (;;) {
        struct fl_req q;
        if (recv_full(fd, &q, sizeof q))
            break;
        uint64_t deadline = fl_now() + c->rtt_ns;
        uint8_t out[sizeof(struct fl_resp) + sizeof(struct fl_hello)];
        struct fl_resp *r = (struct fl_resp *)out;
        memset(out, 0, sizeof out);
        size_t n = sizeof *r;
        if (q.op == FL_OP_HELLO) {
            struct fl_hello h = {.magic = FL_PROTO_MAGIC, .version = FL_PROTO_VERSION, .region_bytes = c->region, .seed = c->seed};
            r->len = sizeof h;
            r->value = c->region;
            memcpy(out + sizeof *r, &h, sizeof h);
            n += sizeof h;
        } else if (q.op == FL_OP_PING) {
            r->value = q.offset;
            fl_wait_precise(CLOCK_MONOTONIC, deadline);
            c->late_sum_ns += fl_now() - deadline;
            c->answers++;
        } else {
            r->status = FL_ST_BAD_OP;
            r->value = q.offset;
        }
        if (send(fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
            break;
    }
    close(fd);
}

/* One connection at a time (the tcp source checks the server with a first
 * connection, then opens the probe's), until the listening socket is shut down. */
static void *control_main(void *arg)
{
    struct control *c = arg;
    int fd;
    while ((fd = accept(c->listen_fd, NULL, NULL)) >= 0)
        serve(c, fd);
    return NULL;
}

struct control_spec {
    uint64_t rtt_us, pings;
};

static int control_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct control_spec *c = ctx;
    uint64_t n;
    if (fl_parse_u64(v, 0, UINT64_MAX, &n)) {
        fl_errf(err, errlen, "rtt control: %s must be a whole number, got '%s'", k, v);
        return -1;
    }
    if (!strcmp(k, "rtt_us"))
        c->rtt_us = n;
    else if (!strcmp(k, "pings"))
        c->pings = n;
    else {
        fl_errf(err, errlen, "rtt control: unknown key '%s' (rtt_us=N pings=N)", k);
        return -1;
    }
    return 0;
}

int fl_rtt_control(const char *spec, char *out, size_t outlen)
{
    struct control_spec cs = {.rtt_us = 0, .pings = 100};
    if (fl_spec_each(spec, "rtt control spec", control_key, &cs, out, outlen))
        return -1;
    const uint64_t rtt_us = cs.rtt_us, pings = cs.pings;
    if (pings < 1 || pings > 100000 || rtt_us > 10000000) {
        fl_errf(out, outlen, "rtt control: pings must be 1..100000 and rtt_us at most 10000000");
        return -1;
    }
    struct control c = {.rtt_ns = rtt_us * 1000, .region = 1 << 16, .seed = 1};
    c.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (c.listen_fd < 0 || bind(c.listen_fd, (struct sockaddr *)&a, sizeof a) || listen(c.listen_fd, 1) ||
        getsockname(c.listen_fd, (struct sockaddr *)&a, &alen)) {
        fl_errf(out, outlen, "rtt control: cannot listen on loopback: %s", strerror(errno));
        if (c.listen_fd >= 0)
            close(c.listen_fd);
        return -1;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, control_main, &c)) {
        close(c.listen_fd);
        fl_errf(out, outlen, "rtt control: cannot start the server thread");
        return -1;
    }
    char tspec[256];
    snprintf(tspec, sizeof tspec, "op=ping requests=%llu source=tcp host=127.0.0.1 port=%d region=%llu seed=%llu chunk=4096 cpus=free",
             (unsigned long long)pings, ntohs(a.sin_port), (unsigned long long)c.region, (unsigned long long)c.seed);
    int rc = fl_transport(tspec, out, outlen); /* connects, pings, disconnects */
    shutdown(c.listen_fd, SHUT_RDWR); /* accept() fails: the server thread ends */
    pthread_join(t, NULL);
    close(c.listen_fd);
    if (rc)
        return -1;
    size_t len = strlen(out);
    if (len && out[len - 1] == '}' && c.answers)
        snprintf(out + len - 1, outlen - len + 1, ",\"server_late_ns_mean\":%.1f}", (double)c.late_sum_ns / (double)c.answers);
    return 0;
}
