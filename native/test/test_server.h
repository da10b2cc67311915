/* A small chunk server on threads for the native tests (docs/protocol.md):
 * HELLO, READ and PING; each request is answered `rtt_ms` after it arrived, in
 * order, so pipelined requests overlap as with the real server. It records
 * the most requests it ever had outstanding on one connection, so a test can
 * tell pipelining from request-response. */
#ifndef FAULTLAB_TEST_SERVER_H
#define FAULTLAB_TEST_SERVER_H
#include "../include/faultlab.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define TS_QUEUE 8192

struct tsrv {
    int listen_fd, port;
    uint64_t region, seed, rtt_ns;
    uint8_t *data;
    atomic_int max_outstanding, stop, conns;
    pthread_t thread;
};

struct ts_req {
    uint8_t op;
    uint32_t len;
    uint64_t off, due;
};

struct ts_conn {
    struct tsrv *s;
    int fd;
};

static void ts_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint64_t ts_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static int ts_send(int fd, const uint8_t *p, size_t n)
{
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static void *ts_conn_main(void *arg)
{
    struct ts_conn *c = arg;
    struct tsrv *s = c->s;
    struct ts_req *q = calloc(TS_QUEUE, sizeof *q);
    uint8_t in[4096];
    size_t have = 0;
    int head = 0, count = 0;
    while (q && !atomic_load(&s->stop)) {
        uint64_t now = fl_now_ns();
        int timeout = 50;
        if (count)
            timeout = q[head].due > now ? (int)((q[head].due - now) / 1000000) : 0;
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int k = poll(&p, 1, timeout);
        if (k > 0) {
            ssize_t n = recv(c->fd, in + have, sizeof in - have, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
            size_t used = 0;
            uint64_t t = fl_now_ns();
            for (; have - used >= 16 && count < TS_QUEUE; used += 16) {
                struct ts_req *r = &q[(head + count++) % TS_QUEUE];
                r->op = in[used];
                r->len = (uint32_t)ts_get(in + used + 4, 4);
                r->off = ts_get(in + used + 8, 8);
                r->due = t + s->rtt_ns;
            }
            memmove(in, in + used, have - used);
            have -= used;
            int m = atomic_load(&s->max_outstanding);
            while (count > m && !atomic_compare_exchange_weak(&s->max_outstanding, &m, count))
                ;
        }
        while (count && q[head].due <= fl_now_ns()) {
            struct ts_req *r = &q[head];
            uint8_t h[16 + 24] = {0};
            int bad = r->op == 2 && (r->off > s->region || r->len > s->region - r->off);
            h[0] = bad ? 1 : 0;
            if (r->op == 1) { /* HELLO */
                ts_put(h + 4, 24, 4);
                ts_put(h + 8, s->region, 8);
                ts_put(h + 16, 0x42414c46u, 4);
                ts_put(h + 20, 1, 4);
                ts_put(h + 24, s->region, 8);
                ts_put(h + 32, s->seed, 8);
                if (ts_send(c->fd, h, 40))
                    goto out;
            } else {
                ts_put(h + 4, r->op == 2 && !bad ? r->len : 0, 4);
                ts_put(h + 8, r->off, 8);
                if (ts_send(c->fd, h, 16) || (r->op == 2 && !bad && ts_send(c->fd, s->data + r->off, r->len)))
                    goto out;
            }
            head = (head + 1) % TS_QUEUE;
            count--;
        }
    }
out:
    close(c->fd);
    free(q);
    free(c);
    atomic_fetch_sub(&s->conns, 1);
    return NULL;
}

static void *ts_accept_main(void *arg)
{
    struct tsrv *s = arg;
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->listen_fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(s->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct ts_conn *c = malloc(sizeof *c);
        pthread_t t;
        c->s = s;
        c->fd = fd;
        atomic_fetch_add(&s->conns, 1);
        if (pthread_create(&t, NULL, ts_conn_main, c)) {
            close(fd);
            free(c);
            atomic_fetch_sub(&s->conns, 1);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

/* Start on a free loopback port; 0 on success. */
static int ts_start(struct tsrv *s, uint64_t region, uint64_t seed, int rtt_ms)
{
    memset(s, 0, sizeof *s);
    s->region = region;
    s->seed = seed;
    s->rtt_ns = (uint64_t)rtt_ms * 1000000ull;
    s->data = mmap(NULL, region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->data == MAP_FAILED)
        return -1;
    fl_fill(s->data, region, seed, 0);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) || listen(s->listen_fd, 64) ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &alen))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, ts_accept_main, s) ? -1 : 0;
}

static void ts_stop(struct tsrv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    while (atomic_load(&s->conns))
        usleep(1000);
    close(s->listen_fd);
    munmap(s->data, s->region);
}
#endif
