/* The `tcp` source: chunk contents come from the chunk server (harness/server)
 * over TCP; the protocol is in sources/protocol.h and docs/protocol.md.
 *
 * Every connect() opens its own TCP connection (one per fetching thread, so a
 * fetch never takes a lock) and checks the server's HELLO against the config.
 * read/write/ping_ns run inside the sigsegv strategy's signal handler, so they
 * are async-signal-safe: only send/recv/poll/clock_gettime, no malloc, no stdio,
 * no locks, error text built with plain copies, errno saved and restored, and a
 * small stack (the handler may run on an alternate signal stack).
 *
 * Timeouts: each request (and HELLO) has one deadline, fetch_timeout_ms after
 * it starts; every send/recv first polls until the socket is ready or the
 * deadline passes. So a fetch fails after fetch_timeout_ms even when the
 * server trickles its answer a byte at a time (a per-recv timeout alone,
 * SO_RCVTIMEO, would restart with every byte and never fire; it is kept as a
 * backstop). After a timeout, an EOF or a response
 * that does not match its request the stream is out of step, and the
 * connection refuses further requests (a late answer must never be taken for
 * the next chunk's contents). */
#include "core/internal.h"
#include "sources/protocol.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define TCP_MAX_INFLIGHT 4096 /* pipelined requests one connection may have outstanding */
#define TCP_MAX_PINGS    128 /* ping_ns keeps its samples on the stack */
#define TCP_CAUSE_LEN    128

struct tcp_source {
    struct fl_source base;
    uint64_t client_rtt_ns; /* client_rtt_us: see hold() */
    char where[96]; /* "host:port" for messages */
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct fl_conn {
    int fd;
    struct tcp_source *src;
    int broken; /* the stream is out of step: refuse further requests */
    char broken_cause[TCP_CAUSE_LEN];
    uint64_t deadline_ns; /* the current request must be done by then (fl_now) */
    /* client_rtt_us: send times of the requests in flight, oldest first (a ring,
     * CLOCK_REALTIME ns), and the kernel's receive time of the last recv's data */
    uint64_t sent[TCP_MAX_INFLIGHT];
    unsigned sent_head, sent_n;
    struct timespec rx;
};

static const char *status_name(unsigned st)
{
    static const char *const names[] = {"OK", "BOUNDS", "BAD_OP", "TOO_LARGE", "MALFORMED"};
    return st < sizeof names / sizeof names[0] ? names[st] : "unknown";
}

/* A cause for an errno from send/recv, without strerror (not async-signal-safe). */
static void t_errno(struct fl_text *t, int e, int timeout_ms)
{
    switch (e) {
    case EAGAIN:
#if EWOULDBLOCK != EAGAIN
    case EWOULDBLOCK:
#endif
        fl_text_str(t, "timeout after ");
        fl_text_u64(t, (uint64_t)timeout_ms);
        fl_text_str(t, " ms");
        break;
    case EPIPE:
        fl_text_str(t, "server closed the connection");
        break;
    case ECONNRESET:
        fl_text_str(t, "connection reset by the server");
        break;
    case ETIMEDOUT:
        fl_text_str(t, "connection timed out");
        break;
    case EHOSTUNREACH:
        fl_text_str(t, "host unreachable");
        break;
    case ENETUNREACH:
        fl_text_str(t, "network unreachable");
        break;
    case ENETDOWN:
        fl_text_str(t, "network is down");
        break;
    default:
        fl_text_str(t, "socket error (errno ");
        fl_text_u64(t, (uint64_t)e);
        fl_text_str(t, ")");
    }
}

/* Mark the connection unusable and copy the cause to err. */
static int conn_break(struct fl_conn *c, const char *cause, char *err, size_t errlen)
{
    struct fl_text t;
    if (!c->broken) {
        c->broken = 1;
        fl_text_init(&t, c->broken_cause, sizeof c->broken_cause);
        fl_text_str(&t, cause);
    }
    fl_text_init(&t, err, errlen);
    fl_text_str(&t, cause);
    return -1;
}

/* ---- little-endian wire encoding --------------------------------------------- */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void encode_req(uint8_t out[16], uint8_t op, uint32_t len, uint64_t off)
{
    out[0] = op;
    out[1] = out[2] = out[3] = 0;
    put_le32(out + 4, len);
    put_le64(out + 8, off);
}

/* ---- blocking I/O that survives EINTR and partial transfers ------------------ */

/* Wait until fd is ready for events or the request's deadline passes:
 * 0 when ready, otherwise the errno to report (EAGAIN: the deadline passed). */
static int wait_ready(struct fl_conn *c, short events)
{
    for (;;) {
        uint64_t now = fl_now();
        if (now >= c->deadline_ns)
            return EAGAIN;
        uint64_t left_ms = (c->deadline_ns - now + 999999) / 1000000;
        struct pollfd p = {.fd = c->fd, .events = events};
        int k = poll(&p, 1, left_ms > INT32_MAX ? INT32_MAX : (int)left_ms);
        if (k > 0)
            return 0; /* ready, or an error/hang-up the next send/recv reports */
        if (k < 0 && errno != EINTR)
            return errno;
    }
}

static void start_deadline(struct fl_conn *c)
{
    c->deadline_ns = fl_now() + (uint64_t)c->src->base.fetch_timeout_ms * 1000000ull;
}

static int send_all(struct fl_conn *c, const void *buf, size_t len, int more, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    while (len) {
        int w = wait_ready(c, POLLOUT);
        ssize_t k = w ? -1 : send(c->fd, p, len, MSG_NOSIGNAL | (more ? MSG_MORE : 0));
        if (w)
            errno = w;
        if (k > 0) {
            p += k;
            len -= (size_t)k;
        } else if (k < 0 && errno == EINTR) {
            continue;
        } else {
            char cause[TCP_CAUSE_LEN];
            struct fl_text t;
            fl_text_init(&t, cause, sizeof cause);
            t_errno(&t, k < 0 ? errno : EPIPE, c->src->base.fetch_timeout_ms);
            return conn_break(c, cause, err, errlen);
        }
    }
    return 0;
}

/* ---- client_rtt_us: latency emulated where it can be precise -----------------
 * The server answers at once; the client holds each answer until
 *     its request's send time + RTT + the answer's own transfer time,
 * the transfer time being the kernel's receive timestamp (SO_TIMESTAMPNS) of
 * its last bytes minus that of its header. So an empty request takes exactly
 * the RTT (the loopback's own round trip is inside it, not added to it), a
 * large answer takes the RTT plus its serialization at the link's real speed,
 * and requests in flight overlap, each due on its own: timestamps are when the
 * kernel got the bytes, not when a thread got round to reading them. The wait
 * (fl_wait_precise: a sleep, then a spin) runs in whichever thread needs the
 * answer (a handler, the prefetcher, the signal handler: clock_nanosleep,
 * clock_gettime and recvmsg are async-signal-safe). Only the server cannot
 * tell: it sees each request RTT/2 early, which reads ignore. */

/* recv() that also notes the kernel's receive timestamp of the data (client_rtt_us). */
static ssize_t recv_stamped(struct fl_conn *c, void *buf, size_t len)
{
    if (!c->src->client_rtt_ns)
        return recv(c->fd, buf, len, 0);
    union {
        char b[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t k = recvmsg(c->fd, &m, 0);
    if (k > 0) {
        c->rx.tv_sec = 0;
        for (struct cmsghdr *h = CMSG_FIRSTHDR(&m); h; h = CMSG_NXTHDR(&m, h))
            if (h->cmsg_level == SOL_SOCKET && h->cmsg_type == SCM_TIMESTAMPNS)
                memcpy(&c->rx, CMSG_DATA(h), sizeof c->rx);
        if (!c->rx.tv_sec) /* no timestamp: count from now (later, never earlier) */
            clock_gettime(CLOCK_REALTIME, &c->rx);
    }
    return k;
}

static int recv_all(struct fl_conn *c, void *buf, size_t len, char *err, size_t errlen)
{
    uint8_t *p = buf;
    while (len) {
        int w = wait_ready(c, POLLIN);
        ssize_t k = w ? -1 : recv_stamped(c, p, len);
        if (w)
            errno = w;
        if (k > 0) {
            p += k;
            len -= (size_t)k;
        } else if (k == 0) {
            return conn_break(c, "server closed the connection", err, errlen);
        } else if (errno == EINTR) {
            continue;
        } else {
            char cause[TCP_CAUSE_LEN];
            struct fl_text t;
            fl_text_init(&t, cause, sizeof cause);
            t_errno(&t, errno, c->src->base.fetch_timeout_ms);
            return conn_break(c, cause, err, errlen);
        }
    }
    return 0;
}

static int note_sent(struct fl_conn *c, char *err, size_t errlen)
{
    if (!c->src->client_rtt_ns)
        return 0;
    if (c->sent_n == TCP_MAX_INFLIGHT)
        return conn_break(c, "too many requests in flight for client_rtt_us", err, errlen);
    c->sent[(c->sent_head + c->sent_n++) % TCP_MAX_INFLIGHT] = fl_clock_ns(CLOCK_REALTIME);
    return 0;
}

/* The oldest request in flight has its whole answer, whose header arrived at
 * header_rx (c->rx holds the arrival of its last bytes): wait until it is due. */
static void hold(struct fl_conn *c, uint64_t header_rx)
{
    if (!c->src->client_rtt_ns || !c->sent_n)
        return;
    uint64_t last_rx = fl_ts_ns(c->rx), transfer = last_rx > header_rx ? last_rx - header_rx : 0;
    uint64_t due = c->sent[c->sent_head] + c->src->client_rtt_ns + transfer;
    c->sent_head = (c->sent_head + 1) % TCP_MAX_INFLIGHT;
    c->sent_n--;
    fl_wait_precise(CLOCK_REALTIME, due); /* the kernel's timestamps are CLOCK_REALTIME */
}

/* A connection that failed once stays failed: its stream position is lost. */
static int refuse_if_broken(struct fl_conn *c, char *err, size_t errlen)
{
    if (!c->broken)
        return 0;
    struct fl_text t;
    fl_text_init(&t, err, errlen);
    fl_text_str(&t, "connection unusable after an earlier error: ");
    fl_text_str(&t, c->broken_cause);
    return -1;
}

/* One request of at most FL_PROTO_MAX_LEN bytes: READ fills buf, WRITE sends it,
 * PING moves nothing. The response must echo the offset and carry the length
 * the request asked for. */
static int request(struct fl_conn *c, uint8_t op, uint64_t off, uint8_t *buf, uint32_t len, char *err, size_t errlen)
{
    if (refuse_if_broken(c, err, errlen))
        return -1;
    uint8_t hdr[16];
    start_deadline(c);
    encode_req(hdr, op, op == FL_OP_PING ? 0 : len, off);
    if (note_sent(c, err, errlen) || send_all(c, hdr, sizeof hdr, op == FL_OP_WRITE && len, err, errlen))
        return -1;
    if (op == FL_OP_WRITE && len && send_all(c, buf, len, 0, err, errlen))
        return -1;
    uint8_t resp[16];
    if (recv_all(c, resp, sizeof resp, err, errlen))
        return -1;
    uint64_t header_rx = fl_ts_ns(c->rx);
    unsigned status = resp[0];
    uint32_t rlen = get_le32(resp + 4);
    uint64_t value = get_le64(resp + 8);
    if (status != FL_ST_OK) {
        char cause[TCP_CAUSE_LEN];
        struct fl_text t;
        fl_text_init(&t, cause, sizeof cause);
        fl_text_str(&t, "server answered status ");
        fl_text_u64(&t, status);
        fl_text_str(&t, " (");
        fl_text_str(&t, status_name(status));
        fl_text_str(&t, ")");
        if (rlen != 0 || value != off || status == FL_ST_TOO_LARGE || status > FL_ST_MALFORMED)
            return conn_break(c, cause, err, errlen); /* the server closes, or we are out of step */
        hold(c, header_rx); /* an answer all the same: due like any other */
        fl_text_init(&t, err, errlen);
        fl_text_str(&t, cause);
        return -1;
    }
    if (rlen != (op == FL_OP_READ ? len : 0) || value != off)
        return conn_break(c, "malformed response", err, errlen);
    if (op == FL_OP_READ && len && recv_all(c, buf, len, err, errlen))
        return -1;
    hold(c, header_rx);
    return 0;
}

/* READ/WRITE of any length, in pieces of at most FL_PROTO_MAX_LEN. */
static int transfer(struct fl_conn *c, uint8_t op, uint64_t off, uint8_t *buf, size_t len, char *err, size_t errlen)
{
    int saved = errno;
    int rc = 0;
    while (len && !rc) {
        uint32_t n = len > FL_PROTO_MAX_LEN ? FL_PROTO_MAX_LEN : (uint32_t)len;
        rc = request(c, op, off, buf, n, err, errlen);
        off += n;
        buf += n;
        len -= n;
    }
    errno = saved;
    return rc;
}

static int tcp_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    return transfer(c, FL_OP_READ, off, dst, len, err, errlen);
}

static int tcp_write(struct fl_conn *c, uint64_t off, const void *src, size_t len, char *err, size_t errlen)
{
    /* request() only reads from buf for WRITE. */
    return transfer(c, FL_OP_WRITE, off, (uint8_t *)(uintptr_t)src, len, err, errlen);
}

/* ---- pipelining: requests sent ahead, answers received in order -------------
 * The server answers one connection's requests in the order it got them, so a
 * READ is sent now and its answer taken later with the same (off, len); the
 * pieces a long READ is split into follow the same order on both sides. */

static int tcp_send_read(struct fl_conn *c, uint64_t off, size_t len, char *err, size_t errlen)
{
    int saved = errno, rc = 0;
    if (refuse_if_broken(c, err, errlen))
        return -1;
    start_deadline(c); /* reliability: every send/recv runs under a deadline */
    while (len && !rc) {
        uint32_t n = len > FL_PROTO_MAX_LEN ? FL_PROTO_MAX_LEN : (uint32_t)len;
        uint8_t hdr[16];
        encode_req(hdr, FL_OP_READ, n, off);
        rc = note_sent(c, err, errlen) || send_all(c, hdr, sizeof hdr, 0, err, errlen);
        off += n;
        len -= n;
    }
    errno = saved;
    return rc;
}

static int tcp_recv_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    int saved = errno, rc = 0;
    uint8_t *p = dst;
    while (len && !rc) {
        uint32_t n = len > FL_PROTO_MAX_LEN ? FL_PROTO_MAX_LEN : (uint32_t)len;
        uint8_t resp[16];
        if (refuse_if_broken(c, err, errlen)) {
            rc = -1;
            break;
        }
        start_deadline(c); /* each answer within fetch_timeout_ms of waiting for it */
        rc = recv_all(c, resp, sizeof resp, err, errlen);
        if (rc)
            break;
        /* Any status but OK, or an answer for another request, means the
         * pipeline is out of step: later answers cannot be trusted. */
        if (resp[0] != FL_ST_OK) {
            char cause[TCP_CAUSE_LEN];
            struct fl_text t;
            fl_text_init(&t, cause, sizeof cause);
            fl_text_str(&t, "server answered status ");
            fl_text_u64(&t, resp[0]);
            fl_text_str(&t, " (");
            fl_text_str(&t, status_name(resp[0]));
            fl_text_str(&t, ") to a pipelined READ");
            rc = conn_break(c, cause, err, errlen);
            break;
        }
        if (get_le32(resp + 4) != n || get_le64(resp + 8) != off) {
            rc = conn_break(c, "malformed response", err, errlen);
            break;
        }
        uint64_t header_rx = fl_ts_ns(c->rx);
        rc = recv_all(c, p, n, err, errlen);
        if (!rc)
            hold(c, header_rx);
        off += n;
        p += n;
        len -= n;
    }
    errno = saved;
    return rc;
}

static int tcp_poll_fd(struct fl_conn *c)
{
    return c->fd;
}

/* Median of n PING round trips (n capped at TCP_MAX_PINGS); 0 if a ping fails
 * (the connection is then refused for further requests, so a run fails loudly). */
static uint64_t tcp_ping(struct fl_conn *c, int n, uint64_t *sent_at)
{
    int saved = errno;
    uint64_t v[TCP_MAX_PINGS];
    char cause[TCP_CAUSE_LEN];
    if (n < 1)
        n = 1;
    if (n > TCP_MAX_PINGS)
        n = TCP_MAX_PINGS;
    for (int i = 0; i < n; i++) {
        uint64_t t0 = fl_now();
        if (sent_at)
            *sent_at = t0;
        if (request(c, FL_OP_PING, 0, NULL, 0, cause, sizeof cause)) {
            errno = saved;
            return 0;
        }
        v[i] = fl_now() - t0;
    }
    for (int i = 1; i < n; i++) { /* insertion sort: small n, no qsort in a handler */
        uint64_t x = v[i];
        int j = i - 1;
        while (j >= 0 && v[j] > x) {
            v[j + 1] = v[j];
            j--;
        }
        v[j + 1] = x;
    }
    errno = saved;
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- connecting (normal context: malloc and stdio are fine here) ------------- */

/* Connect to addr within timeout_ms; returns the fd or -1 with err set. */
static int open_socket(const char *where, const struct sockaddr *addr, socklen_t addrlen, int timeout_ms, char *err, size_t errlen)
{
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        fl_errf(err, errlen, "cannot connect to %s: socket: %s", where, strerror(errno));
        return -1;
    }
    int rc = connect(fd, addr, addrlen);
    if (rc < 0 && errno == EINPROGRESS) {
        uint64_t deadline = fl_now() + (uint64_t)timeout_ms * 1000000ull;
        for (;;) {
            uint64_t now = fl_now();
            int left = now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
            struct pollfd p = {.fd = fd, .events = POLLOUT};
            int k = poll(&p, 1, left);
            if (k < 0 && errno == EINTR)
                continue;
            if (k == 0) {
                fl_errf(err, errlen, "cannot connect to %s: no answer within %d ms", where, timeout_ms);
                close(fd);
                return -1;
            }
            if (k < 0) {
                fl_errf(err, errlen, "cannot connect to %s: poll: %s", where, strerror(errno));
                close(fd);
                return -1;
            }
            break;
        }
        int e = 0;
        socklen_t elen = sizeof e;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &elen) < 0)
            e = errno;
        if (e) {
            errno = e;
            rc = -1;
        } else {
            rc = 0;
        }
    }
    if (rc < 0) {
        fl_errf(err, errlen, "cannot connect to %s: %s", where, strerror(errno));
        close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    int one = 1;
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0 || setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 || setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) < 0) {
        fl_errf(err, errlen, "cannot set up the connection to %s: %s", where, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* HELLO: is this a faultlab chunk server serving the region we expect? */
static int hello(struct fl_conn *c, char *err, size_t errlen)
{
    const struct tcp_source *t = c->src;
    char cause[TCP_CAUSE_LEN];
    uint8_t hdr[16], resp[16], body[sizeof(struct fl_hello)];
    start_deadline(c);
    encode_req(hdr, FL_OP_HELLO, 0, 0);
    if (send_all(c, hdr, sizeof hdr, 0, cause, sizeof cause) || recv_all(c, resp, sizeof resp, cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer HELLO: %s", t->where, cause);
        return -1;
    }
    uint32_t len = get_le32(resp + 4);
    if (resp[0] != FL_ST_OK || len != sizeof body) {
        /* Not our protocol (an HTTP server, say) or an incompatible server. */
        if (resp[0] <= FL_ST_MALFORMED && len == 0)
            fl_errf(err, errlen, "%s answered HELLO with status %u (%s): not a compatible faultlab chunk server", t->where, resp[0],
                    status_name(resp[0]));
        else
            fl_errf(err, errlen, "%s is not a faultlab chunk server (unexpected answer to HELLO)", t->where);
        return -1;
    }
    if (recv_all(c, body, sizeof body, cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer HELLO: %s", t->where, cause);
        return -1;
    }
    uint32_t magic = get_le32(body), version = get_le32(body + 4);
    uint64_t region = get_le64(body + 8), seed = get_le64(body + 16);
    if (magic != FL_PROTO_MAGIC) {
        fl_errf(err, errlen, "%s is not a faultlab chunk server (bad magic 0x%08x)", t->where, magic);
        return -1;
    }
    if (version != FL_PROTO_VERSION) {
        fl_errf(err, errlen, "%s speaks protocol version %u, expected %u", t->where, version, FL_PROTO_VERSION);
        return -1;
    }
    /* Contents are fill(seed, offset) on both sides, so a run may map any prefix
     * of a larger server region: one `faultlab serve --region 1GiB` serves a
     * whole matrix of region sizes. */
    if (region < t->base.region_bytes) {
        fl_errf(err, errlen, "server region is %llu bytes, smaller than this run's %llu (start the server with --region %llu or more)",
                (unsigned long long)region, (unsigned long long)t->base.region_bytes, (unsigned long long)t->base.region_bytes);
        return -1;
    }
    if (seed != t->base.seed) {
        fl_errf(err, errlen, "server seed is %llu, expected %llu (start the server with --seed %llu)", (unsigned long long)seed,
                (unsigned long long)t->base.seed, (unsigned long long)t->base.seed);
        return -1;
    }
    return 0;
}

static int tcp_connect(struct fl_source *s, struct fl_conn **out, char *err, size_t errlen)
{
    struct tcp_source *t = (struct tcp_source *)s;
    struct fl_conn *c = calloc(1, sizeof *c);
    if (!c) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    c->src = t;
    c->fd = open_socket(t->where, (const struct sockaddr *)&t->addr, t->addrlen, s->fetch_timeout_ms, err, errlen);
    int on = 1;
    if (c->fd >= 0 && t->client_rtt_ns && setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on)) {
        fl_errf(err, errlen, "client_rtt_us: cannot enable receive timestamps (SO_TIMESTAMPNS): %s", strerror(errno));
        close(c->fd);
        free(c);
        return -1;
    }
    if (c->fd < 0 || hello(c, err, errlen)) {
        if (c->fd >= 0)
            close(c->fd);
        free(c);
        return -1;
    }
    *out = c;
    return 0;
}

static void tcp_disconnect(struct fl_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0)
        close(c->fd);
    free(c);
}

static void tcp_destroy(struct fl_source *s)
{
    free(s);
}

static const struct fl_source_ops tcp_ops = {
    .name = "tcp",
    .connect = tcp_connect,
    .read = tcp_read,
    .write = tcp_write,
    .ping_ns = tcp_ping,
    .disconnect = tcp_disconnect,
    .destroy = tcp_destroy,
    .send_read = tcp_send_read,
    .recv_read = tcp_recv_read,
    .poll_fd = tcp_poll_fd,
};

struct fl_source *fl_source_tcp_create(const struct fl_config *cfg, char *err, size_t errlen)
{
    if (cfg->port <= 0 || cfg->port > 65535) {
        fl_errf(err, errlen, "source=tcp needs port=N (the chunk server's port)");
        return NULL;
    }
    struct tcp_source *t = calloc(1, sizeof *t);
    if (!t) {
        fl_errf(err, errlen, "out of memory");
        return NULL;
    }
    t->base.ops = &tcp_ops;
    t->base.region_bytes = cfg->region_bytes;
    t->base.seed = cfg->seed;
    t->base.fetch_timeout_ms = cfg->fetch_timeout_ms > 0 ? cfg->fetch_timeout_ms : 5000;
    t->client_rtt_ns = cfg->client_rtt_ns;
    snprintf(t->where, sizeof t->where, strchr(cfg->host, ':') ? "[%s]:%d" : "%s:%d", cfg->host, cfg->port);

    char port[8];
    snprintf(port, sizeof port, "%d", cfg->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int g = getaddrinfo(cfg->host, port, &hints, &res);
    if (g) {
        fl_errf(err, errlen, "cannot connect to %s: cannot resolve '%s': %s", t->where, cfg->host,
                g == EAI_SYSTEM ? strerror(errno) : gai_strerror(g));
        free(t);
        return NULL;
    }
    /* Validate the server now, with one throwaway connection, trying each
     * address the name resolves to; keep the first that answers. */
    char msg[FL_ERR_LEN] = "";
    int ok = 0;
    for (struct addrinfo *ai = res; ai && !ok; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof t->addr)
            continue;
        memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
        t->addrlen = ai->ai_addrlen;
        struct fl_conn *c = NULL;
        if (tcp_connect(&t->base, &c, msg, sizeof msg) == 0) {
            tcp_disconnect(c);
            ok = 1;
        } else if (strncmp(msg, "cannot connect to", 17) != 0) {
            break; /* it answered, but wrongly: that is the message to report */
        }
    }
    freeaddrinfo(res);
    if (!ok) {
        fl_errf(err, errlen, "%s", msg[0] ? msg : "cannot connect: no usable address");
        free(t);
        return NULL;
    }
    return &t->base;
}
