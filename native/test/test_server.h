/* A small NBD server on threads for the native tests (docs/protocol.md): the
 * fixed newstyle handshake (NBD_OPT_GO, NBD_OPT_INFO, NBD_OPT_EXPORT_NAME,
 * NBD_OPT_ABORT), then READ, WRITE, FLUSH and DISC with simple replies. Each
 * request is answered `rtt_ms` after it arrived, so pipelined requests overlap
 * as with the real server. It records the most requests it ever had
 * outstanding on one connection, so a test can tell pipelining from
 * request-response, and can misbehave on purpose (ts_opts): answer out of
 * order, refuse NBD_OPT_GO as an old server does, fail a READ with an NBD
 * error, answer with a cookie nobody sent.
 *
 * ts_handshake is the server side of the handshake alone, for a test's own
 * server (hygiene_test's). */
#ifndef FAULTLAB_TEST_SERVER_H
#define FAULTLAB_TEST_SERVER_H
#include "../include/faultlab.h"
#include "../src/server/nbd_proto.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define TS_QUEUE 8192

/* ---- the handshake, server side, on a blocking socket ---------------------------- */

struct ts_export {
    uint64_t size;
    uint16_t tflags; /* transmission flags besides HAS_FLAGS */
    const char *name; /* NULL: any name reaches the export */
    const char *description; /* NULL: none */
    uint32_t min_block, max_block; /* advertised when max_block > 0 */
    int no_go; /* NBD_OPT_GO and NBD_OPT_INFO get NBD_REP_ERR_UNSUP (an old server) */
};

static int ts_send(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int ts_recv(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int ts_opt_reply(int fd, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t h[NBD_OPT_REPLY_BYTES];
    nbd_put64(h, NBD_REP_MAGIC);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, type);
    nbd_put32(h + 16, len);
    return ts_send(fd, h, sizeof h) || (len && ts_send(fd, data, len)) ? -1 : 0;
}

/* 0: in transmission; -1: the client left, aborted or failed. */
static __attribute__((unused)) int ts_handshake(int fd, const struct ts_export *x)
{
    uint8_t g[NBD_GREETING_BYTES], cf[4], h[NBD_OPT_HEADER_BYTES], data[4200];
    nbd_put64(g, NBD_MAGIC);
    nbd_put64(g + 8, NBD_IHAVEOPT);
    nbd_put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    if (ts_send(fd, g, sizeof g) || ts_recv(fd, cf, sizeof cf))
        return -1;
    int no_zeroes = (nbd_get32(cf) & NBD_FLAG_C_NO_ZEROES) != 0;
    uint16_t tflags = NBD_FLAG_HAS_FLAGS | x->tflags;
    for (;;) {
        if (ts_recv(fd, h, sizeof h) || nbd_get64(h) != NBD_IHAVEOPT)
            return -1;
        uint32_t opt = nbd_get32(h + 8), len = nbd_get32(h + 12);
        if (len >= sizeof data || (len && ts_recv(fd, data, len)))
            return -1;
        data[len] = 0;
        if (opt == NBD_OPT_EXPORT_NAME) {
            if (x->name && strcmp((const char *)data, x->name))
                return -1; /* the option has no error reply: close */
            uint8_t r[10 + 124] = {0};
            nbd_put64(r, x->size);
            nbd_put16(r + 8, tflags);
            return ts_send(fd, r, no_zeroes ? 10 : sizeof r);
        }
        if (opt == NBD_OPT_ABORT) {
            ts_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0);
            return -1;
        }
        if ((opt != NBD_OPT_GO && opt != NBD_OPT_INFO) || x->no_go) {
            if (ts_opt_reply(fd, opt, NBD_REP_ERR_UNSUP, NULL, 0))
                return -1;
            continue;
        }
        uint32_t nlen = len >= 4 ? nbd_get32(data) : UINT32_MAX;
        if (nlen > len - 4 || len - 4 - nlen < 2 || len - 6 - nlen != 2u * nbd_get16(data + 4 + nlen)) {
            if (ts_opt_reply(fd, opt, NBD_REP_ERR_INVALID, NULL, 0))
                return -1;
            continue;
        }
        char name[4200];
        memcpy(name, data + 4, nlen);
        name[nlen] = 0;
        if (x->name && strcmp(name, x->name)) {
            const char *msg = "the test server has another export";
            if (ts_opt_reply(fd, opt, NBD_REP_ERR_UNKNOWN, msg, (uint32_t)strlen(msg)))
                return -1;
            continue;
        }
        int want_desc = 0;
        for (uint16_t i = 0; i < nbd_get16(data + 4 + nlen); i++)
            want_desc |= nbd_get16(data + 6 + nlen + 2 * i) == NBD_INFO_DESCRIPTION;
        uint8_t info[2 + 256];
        nbd_put16(info, NBD_INFO_EXPORT);
        nbd_put64(info + 2, x->size);
        nbd_put16(info + 10, tflags);
        if (ts_opt_reply(fd, opt, NBD_REP_INFO, info, 12))
            return -1;
        if (x->max_block) {
            nbd_put16(info, NBD_INFO_BLOCK_SIZE);
            nbd_put32(info + 2, x->min_block ? x->min_block : 1);
            nbd_put32(info + 6, 4096);
            nbd_put32(info + 10, x->max_block);
            if (ts_opt_reply(fd, opt, NBD_REP_INFO, info, 14))
                return -1;
        }
        if (want_desc && x->description) {
            size_t dl = strlen(x->description);
            nbd_put16(info, NBD_INFO_DESCRIPTION);
            memcpy(info + 2, x->description, dl);
            if (ts_opt_reply(fd, opt, NBD_REP_INFO, info, (uint32_t)(2 + dl)))
                return -1;
        }
        if (ts_opt_reply(fd, opt, NBD_REP_ACK, NULL, 0))
            return -1;
        if (opt == NBD_OPT_GO)
            return 0;
    }
}

/* ---- the server ------------------------------------------------------------------ */

struct ts_opts {
    uint64_t region, seed;
    int rtt_ms;
    int reorder_ms; /* each reply a further 0..reorder_ms-1 ms late, by its cookie: out of order */
    struct ts_export x; /* size and description filled in by ts_start_with when 0/NULL */
    uint32_t fail_error; /* a READ covering fail_off gets this NBD error */
    uint64_t fail_off;
    int bad_cookie_after; /* > 0: the READ after this many gets a reply with a cookie nobody sent */
};

struct tsrv {
    struct ts_opts o;
    char description[64];
    int listen_fd, port;
    uint64_t rtt_ns;
    uint8_t *data;
    atomic_int max_outstanding, stop, conns;
    atomic_int reordered; /* replies sent before an earlier request's */
    atomic_int flushes, discs, reads;
    atomic_int max_len; /* the longest READ or WRITE asked for */
    pthread_t thread;
};

struct ts_req {
    uint16_t type;
    uint32_t len;
    uint64_t cookie, off, due, seq;
};

struct ts_conn {
    struct tsrv *s;
    int fd;
};

static void ts_max(atomic_int *m, int v)
{
    int cur = atomic_load(m);
    while (v > cur && !atomic_compare_exchange_weak(m, &cur, v))
        ;
}

/* Send every queued reply that is due (in arrival order among those due). */
static int ts_answer_due(struct ts_conn *c, struct ts_req *q, int *count)
{
    struct tsrv *s = c->s;
    uint64_t now = fl_now_ns();
    int kept = 0, n = *count;
    for (int i = 0; i < n; i++) {
        struct ts_req r = q[i];
        if (r.due > now) {
            q[kept++] = r;
            continue;
        }
        /* Out of order: an earlier request (kept, or later in the queue) is still unanswered. */
        int earlier = 0;
        for (int j = 0; j < n && !earlier; j++)
            earlier = (j < kept || j > i) && q[j].seq < r.seq;
        if (earlier)
            atomic_fetch_add(&s->reordered, 1);
        uint8_t h[NBD_REPLY_BYTES];
        uint32_t err = 0;
        if (r.type == NBD_CMD_READ || r.type == NBD_CMD_WRITE) {
            if (r.off > s->o.region || r.len > s->o.region - r.off)
                err = NBD_EINVAL;
            else if (r.type == NBD_CMD_READ && s->o.fail_error && r.off <= s->o.fail_off && s->o.fail_off < r.off + r.len)
                err = s->o.fail_error;
        } else if (r.type != NBD_CMD_FLUSH) {
            err = NBD_EINVAL;
        }
        uint64_t cookie = r.cookie;
        if (r.type == NBD_CMD_READ && s->o.bad_cookie_after > 0 && atomic_fetch_add(&s->reads, 1) == s->o.bad_cookie_after)
            cookie ^= 0x5a5a000000000000ull;
        nbd_put32(h, NBD_SIMPLE_REPLY_MAGIC);
        nbd_put32(h + 4, err);
        nbd_put64(h + 8, cookie);
        if (ts_send(c->fd, h, sizeof h) || (r.type == NBD_CMD_READ && !err && ts_send(c->fd, s->data + r.off, r.len)))
            return -1;
    }
    *count = kept;
    return 0;
}

static void *ts_conn_main(void *arg)
{
    struct ts_conn *c = arg;
    struct tsrv *s = c->s;
    struct ts_req *q = calloc(TS_QUEUE, sizeof *q);
    uint8_t in[4096];
    size_t have = 0;
    int count = 0, disc = 0;
    uint64_t seq = 0;
    if (!q || ts_handshake(c->fd, &s->o.x))
        goto out;
    while (!atomic_load(&s->stop) && !(disc && !count)) {
        uint64_t now = fl_now_ns(), first = UINT64_MAX;
        for (int i = 0; i < count; i++)
            if (q[i].due < first)
                first = q[i].due;
        int timeout = !count ? 50 : first > now ? (int)((first - now) / 1000000) : 0;
        struct pollfd p = {.fd = c->fd, .events = disc ? 0 : POLLIN};
        int k = poll(&p, 1, timeout);
        if (k > 0 && (p.revents & POLLIN)) {
            ssize_t n = recv(c->fd, in + have, sizeof in - have, 0);
            if (n <= 0)
                break;
            have += (size_t)n;
            size_t used = 0;
            uint64_t t = fl_now_ns();
            while (have - used >= NBD_REQUEST_BYTES && count < TS_QUEUE && !disc) {
                const uint8_t *h = in + used;
                if (nbd_get32(h) != NBD_REQUEST_MAGIC)
                    goto out;
                struct ts_req *r = &q[count];
                r->type = nbd_get16(h + 6);
                r->cookie = nbd_get64(h + 8);
                r->off = nbd_get64(h + 16);
                r->len = nbd_get32(h + 24);
                used += NBD_REQUEST_BYTES;
                if (r->type == NBD_CMD_DISC) {
                    atomic_fetch_add(&s->discs, 1);
                    disc = 1;
                    break;
                }
                if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE)
                    ts_max(&s->max_len, (int)r->len);
                if (r->type == NBD_CMD_FLUSH)
                    atomic_fetch_add(&s->flushes, 1);
                if (r->type == NBD_CMD_WRITE) { /* the payload: what is buffered, then the rest from the socket */
                    int ok = r->off <= s->o.region && r->len <= s->o.region - r->off;
                    uint8_t *dst = ok ? s->data + r->off : NULL;
                    size_t buffered = have - used < r->len ? have - used : r->len;
                    if (dst)
                        memcpy(dst, in + used, buffered);
                    used += buffered;
                    for (size_t left = r->len - buffered; left;) {
                        uint8_t sink[4096];
                        size_t k2 = left < sizeof sink ? left : sizeof sink;
                        if (ts_recv(c->fd, dst ? dst + (r->len - left) : sink, k2))
                            goto out;
                        left -= k2;
                    }
                }
                uint64_t jitter = s->o.reorder_ms ? (r->cookie * 2654435761u >> 7) % (uint64_t)s->o.reorder_ms * 1000000ull : 0;
                r->due = t + s->rtt_ns + jitter;
                r->seq = seq++;
                count++;
            }
            memmove(in, in + used, have - used);
            have -= used;
            ts_max(&s->max_outstanding, count);
        } else if (k > 0 && (p.revents & (POLLERR | POLLHUP))) {
            break;
        }
        if (ts_answer_due(c, q, &count))
            break;
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

/* Start on a free loopback port with o's behaviour; 0 on success. The export
 * is o->region bytes of fl_fill(seed), described as faultlab's own unless
 * o->x.description says otherwise ("" for none). */
static __attribute__((unused)) int ts_start_with(struct tsrv *s, const struct ts_opts *o)
{
    memset(s, 0, sizeof *s);
    s->o = *o;
    s->rtt_ns = (uint64_t)o->rtt_ms * 1000000ull;
    if (!s->o.x.size)
        s->o.x.size = o->region;
    if (!s->o.x.description) {
        snprintf(s->description, sizeof s->description, "faultlab seed=%llu", (unsigned long long)o->seed);
        s->o.x.description = s->description;
    } else if (!s->o.x.description[0]) {
        s->o.x.description = NULL;
    }
    s->o.x.tflags |= NBD_FLAG_SEND_FLUSH;
    s->data = mmap(NULL, o->region, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (s->data == MAP_FAILED)
        return -1;
    fl_fill(s->data, o->region, o->seed, 0);
    s->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof a;
    if (s->listen_fd < 0 || bind(s->listen_fd, (struct sockaddr *)&a, sizeof a) || listen(s->listen_fd, 64) ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &alen))
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, ts_accept_main, s) ? -1 : 0;
}

static __attribute__((unused)) int ts_start(struct tsrv *s, uint64_t region, uint64_t seed, int rtt_ms)
{
    struct ts_opts o = {.region = region, .seed = seed, .rtt_ms = rtt_ms};
    return ts_start_with(s, &o);
}

static __attribute__((unused)) void ts_stop(struct tsrv *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->thread, NULL);
    while (atomic_load(&s->conns))
        usleep(1000);
    close(s->listen_fd);
    munmap(s->data, s->o.region);
}
#endif
