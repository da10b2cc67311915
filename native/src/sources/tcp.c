/* The `tcp` source: chunk contents come from an NBD server (the Network Block
 * Device protocol, NetworkBlockDevice/nbd doc/proto.md): faultlab's own
 * (server/nbd_*.c) or any other, such as nbdkit. What faultlab uses of the
 * protocol is in docs/protocol.md; its numbers in server/nbd_proto.h.
 *
 * Every connect() opens its own TCP connection (one per fetching thread, so a
 * fetch never takes a lock) and runs the fixed newstyle handshake, checking
 * the export against the config. read, write, ping_ns, send_read, recv_read
 * and ready run inside the sigsegv strategy's signal handler, so they are
 * async-signal-safe: only send/recv/poll/clock_gettime, no malloc, no stdio,
 * no locks, error text built with plain copies, errno saved and restored, and
 * a small stack (the handler may run on an alternate signal stack).
 *
 * Requests carry 64-bit cookies, and a server may answer pipelined requests
 * in any order (nbdkit's threads do): each connection keeps its requests in
 * flight in a table indexed by cookie, and every reply is matched by its
 * cookie, a READ's data read straight into that request's destination. So
 * the pipelined READs of send_read can complete in any order; recv_read still
 * hands them out in the order sent, each once its own reply is in.
 *
 * Timeouts: each request (and the handshake) has one deadline,
 * fetch_timeout_ms after it starts; a send/recv that would block (each is
 * tried first with MSG_DONTWAIT) polls until the socket is ready or the
 * deadline passes. So a fetch fails after
 * fetch_timeout_ms even when the server trickles its answer a byte at a time
 * (a per-recv timeout alone, SO_RCVTIMEO, would restart with every byte and
 * never fire; it is kept as a backstop). After a timeout, an EOF or a reply
 * that matches no request the stream is out of step, and the connection
 * refuses further requests (a late answer must never be taken for the next
 * chunk's contents). */
#include "core/internal.h"
#include "server/nbd_proto.h"

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

#define TCP_MAX_INFLIGHT  4096 /* requests one connection may have outstanding */
#define TCP_MAX_PINGS     128 /* ping_ns keeps its samples on the stack */
#define TCP_CAUSE_LEN     FL_ERR_LEN
#define TCP_OPT_DATA_MAX  4096 /* option reply data read: info payloads, error strings (the spec's longest string) */
#define TCP_MAX_MIN_BLOCK (64u << 10) /* the spec's bound on a minimum block size */
/* Without NBD_INFO_BLOCK_SIZE the spec asks interoperable clients to move at
 * most 32 MiB per request. */
#define TCP_DEFAULT_MAX_BLOCK (32u << 20)

enum { REQ_FREE, REQ_SENT, REQ_DONE };

/* One request in flight, at reqs[cookie % TCP_MAX_INFLIGHT]. */
struct req {
    uint64_t cookie, off;
    uint8_t *dst; /* READ: where its data goes */
    uint64_t sent_ns, due_ns; /* client_rtt_us (CLOCK_REALTIME): see finish() */
    uint32_t len, error; /* error: the reply's NBD errno */
    uint16_t type;
    uint8_t state;
    uint8_t last; /* the last piece of one send_read */
};

struct tcp_source {
    struct fl_source base;
    uint64_t client_rtt_ns; /* client_rtt_us: see finish() */
    char where[96]; /* "host:port" for messages */
    char export_name[256];
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

struct fl_conn {
    int fd;
    struct tcp_source *src;
    int broken; /* the stream is out of step: refuse further requests */
    int in_step; /* broken by a server's error reply, the stream still in step: say goodbye */
    int transmission; /* the handshake is done: NBD_CMD_DISC says goodbye */
    char broken_cause[TCP_CAUSE_LEN];
    uint64_t deadline_ns; /* the current request must be done by then (fl_now) */
    /* The export as negotiated. */
    uint64_t export_bytes;
    uint16_t tflags; /* transmission flags */
    uint32_t min_block, max_block;
    uint8_t *scratch; /* without NBD_FLAG_SEND_FLUSH a ping READs min_block bytes here */
    /* Requests in flight by cookie, and the pipelined READs not yet handed
     * out (their cookies, oldest first). */
    uint64_t next_cookie;
    unsigned sent; /* requests whose reply is not in yet */
    struct req reqs[TCP_MAX_INFLIGHT];
    uint64_t pipe[TCP_MAX_INFLIGHT];
    unsigned pipe_head, pipe_n;
    struct timespec rx; /* client_rtt_us: kernel receive time of the last recv's data */
};

static const char *nbd_err_name(uint32_t e)
{
    switch (e) {
    case NBD_EPERM:
        return "EPERM";
    case NBD_EIO:
        return "EIO";
    case NBD_ENOMEM:
        return "ENOMEM";
    case NBD_EINVAL:
        return "EINVAL";
    case NBD_ENOSPC:
        return "ENOSPC";
    case NBD_EOVERFLOW:
        return "EOVERFLOW";
    case NBD_ENOTSUP:
        return "ENOTSUP";
    case NBD_ESHUTDOWN:
        return "ESHUTDOWN";
    default:
        return NULL;
    }
}

static const char *cmd_name(uint16_t type)
{
    return type == NBD_CMD_READ ? "READ" : type == NBD_CMD_WRITE ? "WRITE" : type == NBD_CMD_FLUSH ? "FLUSH" : "DISC";
}

static void t_hex(struct fl_text *t, uint64_t v)
{
    char tmp[19] = "0x";
    int n = 2;
    for (int shift = 60; shift >= 0; shift -= 4) {
        int d = (int)((v >> shift) & 0xf);
        if (d || n > 2 || shift == 0)
            tmp[n++] = "0123456789abcdef"[d];
    }
    tmp[n] = 0;
    fl_text_str(t, tmp);
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
    if (err != cause) {
        fl_text_init(&t, err, errlen);
        fl_text_str(&t, cause);
    }
    return -1;
}

/* conn_break with errno e as its cause (a timeout named with its limit). */
static int conn_break_errno(struct fl_conn *c, int e, char *err, size_t errlen)
{
    char cause[TCP_CAUSE_LEN];
    struct fl_text t;
    fl_text_init(&t, cause, sizeof cause);
    t_errno(&t, e, c->src->base.fetch_timeout_ms);
    return conn_break(c, cause, err, errlen);
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

/* send and recv try first without blocking (MSG_DONTWAIT) and wait with
 * poll only when the socket is not ready: a request's header and an answer's
 * data usually are, and each poll saved is a system call per round trip. */
static int send_all(struct fl_conn *c, const void *buf, size_t len, int more, char *err, size_t errlen)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t k = send(c->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
        if (k > 0) {
            p += k;
            len -= (size_t)k;
            continue;
        }
        int e = k < 0 ? errno : EPIPE;
        if (e == EINTR)
            continue;
        if ((e == EAGAIN || e == EWOULDBLOCK) && !(e = wait_ready(c, POLLOUT)))
            continue;
        return conn_break_errno(c, e, err, errlen);
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
 * (fl_wait_precise: a sleep, then a spin) runs in whichever thread takes the
 * answer (a handler, the prefetcher, the signal handler: clock_nanosleep,
 * clock_gettime and recvmsg are async-signal-safe). Only the server cannot
 * tell: it sees each request RTT/2 early, which reads ignore. */

/* recv() that also notes the kernel's receive timestamp of the data (client_rtt_us). */
static ssize_t recv_stamped(struct fl_conn *c, void *buf, size_t len)
{
    if (!c->src->client_rtt_ns)
        return recv(c->fd, buf, len, MSG_DONTWAIT);
    union {
        char b[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof ctl.b};
    ssize_t k = recvmsg(c->fd, &m, MSG_DONTWAIT);
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
        ssize_t k = recv_stamped(c, p, len);
        if (k > 0) {
            p += k;
            len -= (size_t)k;
            continue;
        }
        if (k == 0)
            return conn_break(c, "server closed the connection", err, errlen);
        int e = errno;
        if (e == EINTR)
            continue;
        if ((e == EAGAIN || e == EWOULDBLOCK) && !(e = wait_ready(c, POLLIN)))
            continue;
        return conn_break_errno(c, e, err, errlen);
    }
    return 0;
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

/* ---- requests and replies ------------------------------------------------------ */

static struct req *slot(struct fl_conn *c, uint64_t cookie)
{
    return &c->reqs[cookie % TCP_MAX_INFLIGHT];
}

/* The largest piece of a len-byte transfer one request may move. */
static uint32_t piece(const struct fl_conn *c, uint64_t len)
{
    if (len <= c->max_block)
        return (uint32_t)len;
    return c->max_block - c->max_block % c->min_block;
}

/* Requests must respect the server's minimum block size (faultlab's offsets
 * are chunk multiples; another server may ask for more). */
static int check_aligned(struct fl_conn *c, uint16_t type, uint64_t off, uint64_t len, char *err, size_t errlen)
{
    if (c->min_block <= 1 || (off % c->min_block == 0 && len % c->min_block == 0))
        return 0;
    struct fl_text t;
    fl_text_init(&t, err, errlen);
    fl_text_str(&t, cmd_name(type));
    fl_text_str(&t, " of ");
    fl_text_u64(&t, len);
    fl_text_str(&t, " bytes at offset ");
    t_hex(&t, off);
    fl_text_str(&t, " is not aligned to the server's minimum block size of ");
    fl_text_u64(&t, c->min_block);
    fl_text_str(&t, " bytes");
    return -1;
}

/* Send one request (a WRITE with its payload from buf; a READ's data will
 * land at buf); *cookie names it. */
static int submit(struct fl_conn *c, uint16_t type, uint64_t off, uint8_t *buf, uint32_t len, int last, uint64_t *cookie, char *err,
                  size_t errlen)
{
    uint64_t ck = c->next_cookie;
    struct req *r = slot(c, ck);
    if (r->state != REQ_FREE)
        return conn_break(c, "too many requests in flight on one connection", err, errlen);
    c->next_cookie++;
    *r = (struct req){.cookie = ck, .off = off, .dst = buf, .len = len, .type = type, .state = REQ_SENT, .last = (uint8_t)last};
    c->sent++;
    if (c->src->client_rtt_ns)
        r->sent_ns = fl_clock_ns(CLOCK_REALTIME);
    uint8_t h[NBD_REQUEST_BYTES];
    nbd_put32(h, NBD_REQUEST_MAGIC);
    nbd_put16(h + 4, 0);
    nbd_put16(h + 6, type);
    nbd_put64(h + 8, ck);
    nbd_put64(h + 16, off);
    nbd_put32(h + 24, len);
    int payload = type == NBD_CMD_WRITE && len;
    if (send_all(c, h, sizeof h, payload, err, errlen) || (payload && send_all(c, buf, len, 0, err, errlen)))
        return -1;
    *cookie = ck;
    return 0;
}

/* Check a simple reply's header and find the request it answers. */
static int reply_header(struct fl_conn *c, const uint8_t *h, struct req **out, char *err, size_t errlen)
{
    uint32_t magic = nbd_get32(h);
    uint64_t ck = nbd_get64(h + 8);
    char cause[TCP_CAUSE_LEN];
    struct fl_text t;
    fl_text_init(&t, cause, sizeof cause);
    if (magic != NBD_SIMPLE_REPLY_MAGIC) {
        if (magic == NBD_STRUCTURED_REPLY_MAGIC) {
            fl_text_str(&t, "malformed response: a structured reply, which faultlab did not negotiate");
        } else {
            fl_text_str(&t, "malformed response: reply magic ");
            t_hex(&t, magic);
            fl_text_str(&t, ", expected 0x67446698");
        }
        return conn_break(c, cause, err, errlen);
    }
    struct req *r = slot(c, ck);
    if (r->state != REQ_SENT || r->cookie != ck) {
        fl_text_str(&t, "malformed response: a reply with cookie ");
        t_hex(&t, ck);
        fl_text_str(&t, ", which no request in flight has");
        return conn_break(c, cause, err, errlen);
    }
    r->error = nbd_get32(h + 4);
    *out = r;
    return 0;
}

static void complete(struct fl_conn *c, struct req *r)
{
    r->state = REQ_DONE;
    c->sent--;
}

/* Read one reply, whichever request it answers, and complete that request. */
static int read_reply(struct fl_conn *c, char *err, size_t errlen)
{
    uint8_t h[NBD_REPLY_BYTES];
    struct req *r;
    if (recv_all(c, h, sizeof h, err, errlen))
        return -1;
    uint64_t header_rx = fl_ts_ns(c->rx);
    if (reply_header(c, h, &r, err, errlen))
        return -1;
    /* A simple reply carries data only for a READ that succeeded. */
    if (!r->error && r->type == NBD_CMD_READ && r->len && recv_all(c, r->dst, r->len, err, errlen))
        return -1;
    complete(c, r);
    if (c->src->client_rtt_ns) {
        uint64_t last_rx = fl_ts_ns(c->rx), transfer = last_rx > header_rx ? last_rx - header_rx : 0;
        r->due_ns = r->sent_ns + c->src->client_rtt_ns + transfer;
    }
    return 0;
}

/* The answer to a READ that is alone on its connection (a fault's): nothing
 * else can arrive first, so the first recvmsg blocks until it does (bounded by
 * SO_RCVTIMEO, the fetch timeout) and takes header and data at once; only a
 * reply split across segments goes on through wait_ready and the deadline.
 * Three system calls fewer per fault than read_reply, whose recv first finds
 * nothing, then polls, then takes the data apart. */
static int read_alone(struct fl_conn *c, struct req *r, char *err, size_t errlen)
{
    uint8_t h[NBD_REPLY_BYTES];
    size_t got = 0;
    for (bool first = true; got < sizeof h; first = false) {
        int e = first ? 0 : wait_ready(c, POLLIN);
        if (e)
            return conn_break_errno(c, e, err, errlen);
        struct iovec iov[2] = {{.iov_base = h + got, .iov_len = sizeof h - got}, {.iov_base = r->dst, .iov_len = r->len}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = 2};
        ssize_t k = recvmsg(c->fd, &m, first ? 0 : MSG_DONTWAIT);
        if (k == 0)
            return conn_break(c, "server closed the connection", err, errlen);
        if (k < 0 && errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK)
            return conn_break_errno(c, errno, err, errlen);
        if (k > 0)
            got += (size_t)k;
    }
    struct req *q;
    if (reply_header(c, h, &q, err, errlen))
        return -1;
    size_t data = got - sizeof h;
    if (q != r || (q->error && data))
        return conn_break(c, "malformed response: data after an error reply, or a reply to no request", err, errlen);
    if (!r->error && data < r->len && recv_all(c, r->dst + data, r->len - data, err, errlen))
        return -1;
    complete(c, r);
    return 0;
}

/* Read replies until r's is in (others complete their own requests). */
static int await(struct fl_conn *c, struct req *r, char *err, size_t errlen)
{
    while (r->state != REQ_DONE)
        if (read_reply(c, err, errlen))
            return -1;
    return 0;
}

/* Hand out a completed request: hold it until due (client_rtt_us), free its
 * slot, report the server's error. A pipelined READ's error breaks the
 * connection (the caller's pipeline is lost); a single request's does not
 * (the stream is still in step). ESHUTDOWN always does: the server goes away. */
static int finish(struct fl_conn *c, struct req *r, int pipelined, char *err, size_t errlen)
{
    if (c->src->client_rtt_ns)
        fl_wait_precise(CLOCK_REALTIME, r->due_ns); /* the kernel's timestamps are CLOCK_REALTIME */
    r->state = REQ_FREE;
    if (!r->error)
        return 0;
    char cause[TCP_CAUSE_LEN];
    struct fl_text t;
    fl_text_init(&t, cause, sizeof cause);
    const char *name = nbd_err_name(r->error);
    fl_text_str(&t, "server answered ");
    if (name) {
        fl_text_str(&t, name);
    } else {
        fl_text_str(&t, "NBD error ");
        fl_text_u64(&t, r->error);
    }
    fl_text_str(&t, " to ");
    fl_text_str(&t, cmd_name(r->type));
    if (r->type == NBD_CMD_READ || r->type == NBD_CMD_WRITE) {
        fl_text_str(&t, " of ");
        fl_text_u64(&t, r->len);
        fl_text_str(&t, " bytes at offset ");
        t_hex(&t, r->off);
    }
    if (pipelined || r->error == NBD_ESHUTDOWN) {
        c->in_step = !c->broken;
        return conn_break(c, cause, err, errlen);
    }
    fl_text_init(&t, err, errlen);
    fl_text_str(&t, cause);
    return -1;
}

/* One request, waited for. */
static int request(struct fl_conn *c, uint16_t type, uint64_t off, uint8_t *buf, uint32_t len, char *err, size_t errlen)
{
    uint64_t ck;
    if (refuse_if_broken(c, err, errlen))
        return -1;
    start_deadline(c);
    if (submit(c, type, off, buf, len, 1, &ck, err, errlen))
        return -1;
    struct req *r = slot(c, ck);
    int alone = type == NBD_CMD_READ && len && c->sent == 1 && !c->src->client_rtt_ns; /* client_rtt_us needs recv_stamped */
    if (alone ? read_alone(c, r, err, errlen) : await(c, r, err, errlen))
        return -1;
    return finish(c, r, 0, err, errlen);
}

/* READ/WRITE of any length, in pieces of at most the server's maximum block size. */
static int transfer(struct fl_conn *c, uint16_t type, uint64_t off, uint8_t *buf, size_t len, char *err, size_t errlen)
{
    int saved = errno;
    int rc = check_aligned(c, type, off, len, err, errlen);
    if (!rc && type == NBD_CMD_WRITE && (c->tflags & NBD_FLAG_READ_ONLY)) {
        struct fl_text t;
        fl_text_init(&t, err, errlen);
        fl_text_str(&t, "the server's export is read-only (NBD_FLAG_READ_ONLY): cannot WRITE");
        rc = -1;
    }
    while (len && !rc) {
        uint32_t n = piece(c, len);
        rc = request(c, type, off, buf, n, err, errlen);
        off += n;
        buf += n;
        len -= n;
    }
    errno = saved;
    return rc;
}

static int tcp_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    return transfer(c, NBD_CMD_READ, off, dst, len, err, errlen);
}

static int tcp_write(struct fl_conn *c, uint64_t off, const void *src, size_t len, char *err, size_t errlen)
{
    /* transfer() only reads from buf for WRITE. */
    return transfer(c, NBD_CMD_WRITE, off, (uint8_t *)(uintptr_t)src, len, err, errlen);
}

/* ---- pipelined WRITEs: a batch of runs, up to depth requests in flight ---------
 * Each run [off[i], off[i]+len[i]) goes from base+off[i], in pieces of at most
 * the server's maximum block. Before a request would make depth outstanding,
 * the oldest one's reply is awaited (replies may come in any order; read_reply
 * completes whichever arrives). So a batch costs its bytes at the link's speed
 * plus about one round trip, not one round trip per run. A server's error
 * reply fails the batch and breaks the connection (what was written is
 * unknown to the caller). Not for use with send_read's READs outstanding. */
static int drain_one(struct fl_conn *c, uint64_t ck, char *err, size_t errlen)
{
    struct req *r = slot(c, ck);
    start_deadline(c); /* each reply within fetch_timeout_ms of waiting for it */
    return await(c, r, err, errlen) || finish(c, r, 1, err, errlen);
}

static int tcp_write_runs(struct fl_conn *c, const uint8_t *base, const uint64_t *off, const uint64_t *len, size_t n, int depth, char *err,
                          size_t errlen)
{
    int saved = errno, rc = refuse_if_broken(c, err, errlen);
    if (!rc && c->pipe_n)
        rc = conn_break(c, "write_runs with pipelined READs outstanding", err, errlen);
    if (!rc && (c->tflags & NBD_FLAG_READ_ONLY)) {
        struct fl_text t;
        fl_text_init(&t, err, errlen);
        fl_text_str(&t, "the server's export is read-only (NBD_FLAG_READ_ONLY): cannot WRITE");
        rc = -1;
    }
    /* Every run is checked before any is sent: a refusal midway would leave
     * the WRITEs before it in flight with no one to collect their replies. */
    for (size_t i = 0; i < n && !rc; i++)
        rc = check_aligned(c, NBD_CMD_WRITE, off[i], len[i], err, errlen);
    uint64_t depth_max = depth < 1 ? 1 : depth > TCP_MAX_INFLIGHT / 2 ? TCP_MAX_INFLIGHT / 2 : (uint64_t)depth;
    uint64_t oldest = c->next_cookie; /* this batch's cookies are consecutive */
    for (size_t i = 0; i < n && !rc; i++) {
        uint64_t o = off[i], l = len[i];
        while (l && !rc) {
            uint32_t k = piece(c, l);
            uint64_t ck;
            while (!rc && c->next_cookie - oldest >= depth_max)
                rc = drain_one(c, oldest++, err, errlen);
            if (rc)
                break;
            start_deadline(c);
            rc = submit(c, NBD_CMD_WRITE, o, (uint8_t *)(uintptr_t)(base + o), k, 1, &ck, err, errlen);
            o += k;
            l -= k;
        }
    }
    while (!rc && oldest < c->next_cookie)
        rc = drain_one(c, oldest++, err, errlen);
    errno = saved;
    return rc;
}

/* ---- pipelining: READs sent ahead, handed out in the order sent -------------- */

static int tcp_send_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    int saved = errno, rc = 0;
    uint8_t *p = dst;
    if (refuse_if_broken(c, err, errlen) || check_aligned(c, NBD_CMD_READ, off, len, err, errlen)) {
        errno = saved;
        return -1;
    }
    start_deadline(c); /* reliability: every send/recv runs under a deadline */
    while (len && !rc) {
        uint32_t n = piece(c, len);
        uint64_t ck;
        if (c->pipe_n == TCP_MAX_INFLIGHT)
            rc = conn_break(c, "too many pipelined READs in flight on one connection", err, errlen);
        else
            rc = submit(c, NBD_CMD_READ, off, p, n, n == len, &ck, err, errlen);
        if (!rc)
            c->pipe[(c->pipe_head + c->pipe_n++) % TCP_MAX_INFLIGHT] = ck;
        off += n;
        p += n;
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
        if (refuse_if_broken(c, err, errlen)) {
            rc = -1;
            break;
        }
        struct req *r = c->pipe_n ? slot(c, c->pipe[c->pipe_head]) : NULL;
        if (!r || r->state == REQ_FREE || r->cookie != c->pipe[c->pipe_head] || r->off != off || r->dst != p || r->len > len) {
            rc = conn_break(c, "pipelined READs received in another order than sent", err, errlen);
            break;
        }
        c->pipe_head = (c->pipe_head + 1) % TCP_MAX_INFLIGHT;
        c->pipe_n--;
        uint32_t n = r->len;
        start_deadline(c); /* each answer within fetch_timeout_ms of waiting for it */
        rc = await(c, r, err, errlen) || finish(c, r, 1, err, errlen);
        off += n;
        p += n;
        len -= n;
    }
    errno = saved;
    return rc;
}

/* The oldest send_read's replies are all in: recv_read will not wait. (A
 * reply read while waiting for another one leaves nothing for poll to see.) */
static int tcp_ready(struct fl_conn *c)
{
    if (c->broken)
        return c->pipe_n > 0; /* recv_read reports it at once */
    for (unsigned i = 0; i < c->pipe_n; i++) {
        const struct req *r = slot(c, c->pipe[(c->pipe_head + i) % TCP_MAX_INFLIGHT]);
        if (r->state != REQ_DONE)
            return 0;
        if (r->last)
            return 1;
    }
    return 0;
}

static int tcp_poll_fd(struct fl_conn *c)
{
    return c->fd;
}

/* Median of n empty round trips (n capped at TCP_MAX_PINGS): NBD_CMD_FLUSH,
 * which every server answers without moving data (or, where the server does
 * not take FLUSH, a READ of its minimum block). 0 if one fails (the
 * connection is then refused for further requests, so a run fails loudly). */
static uint64_t tcp_ping(struct fl_conn *c, int n, uint64_t *sent_at)
{
    int saved = errno;
    uint64_t v[TCP_MAX_PINGS];
    char cause[TCP_CAUSE_LEN];
    int flush = (c->tflags & NBD_FLAG_SEND_FLUSH) != 0;
    if (n < 1)
        n = 1;
    if (n > TCP_MAX_PINGS)
        n = TCP_MAX_PINGS;
    for (int i = 0; i < n; i++) {
        uint64_t t0 = fl_now();
        if (sent_at)
            *sent_at = t0;
        if (request(c, flush ? NBD_CMD_FLUSH : NBD_CMD_READ, 0, flush ? NULL : c->scratch, flush ? 0 : c->min_block, cause, sizeof cause)) {
            if (!c->broken) { /* a server's error reply: still in step */
                c->in_step = 1;
                conn_break(c, cause, cause, sizeof cause);
            }
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

static const char *rep_err_name(uint32_t type)
{
    switch (type) {
    case NBD_REP_ERR_UNSUP:
        return "NBD_REP_ERR_UNSUP";
    case NBD_REP_ERR_POLICY:
        return "NBD_REP_ERR_POLICY";
    case NBD_REP_ERR_INVALID:
        return "NBD_REP_ERR_INVALID";
    case NBD_REP_ERR_PLATFORM:
        return "NBD_REP_ERR_PLATFORM";
    case NBD_REP_ERR_TLS_REQD:
        return "NBD_REP_ERR_TLS_REQD";
    case NBD_REP_ERR_UNKNOWN:
        return "NBD_REP_ERR_UNKNOWN";
    case NBD_REP_ERR_SHUTDOWN:
        return "NBD_REP_ERR_SHUTDOWN";
    case NBD_REP_ERR_BLOCK_SIZE_REQD:
        return "NBD_REP_ERR_BLOCK_SIZE_REQD";
    case NBD_REP_ERR_TOO_BIG:
        return "NBD_REP_ERR_TOO_BIG";
    default:
        return "an NBD option error";
    }
}

/* What the handshake learnt besides the export's size and flags. */
struct hs_info {
    int faultlab; /* the description is faultlab's own: "faultlab seed=N" */
    int has_seed;
    uint64_t seed;
    int has_sizes;
};

/* "faultlab seed=N" (further key=value words allowed): faultlab's own server,
 * serving fl_fill(N, offset). Any other description says nothing. */
static void parse_description(const char *d, struct hs_info *hs)
{
    if (strncmp(d, "faultlab", 8) || (d[8] && d[8] != ' '))
        return;
    hs->faultlab = 1;
    for (const char *p = d + 8; (p = strstr(p, "seed=")); p += 5) {
        if (p[-1] != ' ')
            continue;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p + 5, &end, 10);
        if (end != p + 5 && (*end == 0 || *end == ' ') && !errno) {
            hs->has_seed = 1;
            hs->seed = v;
        }
        return;
    }
}

static int send_option(struct fl_conn *c, uint32_t opt, const uint8_t *data, uint32_t len, char *err, size_t errlen)
{
    uint8_t h[NBD_OPT_HEADER_BYTES];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, len);
    return send_all(c, h, sizeof h, len != 0, err, errlen) || (len && send_all(c, data, len, 0, err, errlen)) ? -1 : 0;
}

static int opt_replies(struct fl_conn *c, struct hs_info *hs, uint8_t *data, char *err, size_t errlen);

/* NBD_OPT_GO for the export, asking for its block sizes and description.
 * 0: in transmission; 1: the server does not know GO (use EXPORT_NAME);
 * -1: refused or failed, err set. */
static int opt_go(struct fl_conn *c, struct hs_info *hs, char *err, size_t errlen)
{
    const struct tcp_source *t = c->src;
    char cause[TCP_CAUSE_LEN];
    size_t nlen = strlen(t->export_name);
    uint8_t req[4 + sizeof t->export_name + 6];
    nbd_put32(req, (uint32_t)nlen);
    memcpy(req + 4, t->export_name, nlen);
    nbd_put16(req + 4 + nlen, 2);
    nbd_put16(req + 6 + nlen, NBD_INFO_BLOCK_SIZE);
    nbd_put16(req + 8 + nlen, NBD_INFO_DESCRIPTION);
    if (send_option(c, NBD_OPT_GO, req, (uint32_t)(nlen + 10), cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
        return -1;
    }
    uint8_t *data = malloc(TCP_OPT_DATA_MAX + 1);
    if (!data) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    int rc = opt_replies(c, hs, data, err, errlen);
    free(data);
    return rc;
}

/* The replies to NBD_OPT_GO, up to its final one (opt_go's results). */
static int opt_replies(struct fl_conn *c, struct hs_info *hs, uint8_t *data, char *err, size_t errlen)
{
    const struct tcp_source *t = c->src;
    char cause[TCP_CAUSE_LEN];
    int have_export = 0;
    for (;;) {
        uint8_t h[NBD_OPT_REPLY_BYTES];
        if (recv_all(c, h, sizeof h, cause, sizeof cause)) {
            fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
            return -1;
        }
        uint32_t type = nbd_get32(h + 12), len = nbd_get32(h + 16);
        if (nbd_get64(h) != NBD_REP_MAGIC || nbd_get32(h + 8) != NBD_OPT_GO || len > TCP_OPT_DATA_MAX) {
            fl_errf(err, errlen, "%s sent a malformed NBD option reply (magic 0x%llx, option %u, %u bytes)", t->where,
                    (unsigned long long)nbd_get64(h), nbd_get32(h + 8), len);
            return -1;
        }
        if (len && recv_all(c, data, len, cause, sizeof cause)) {
            fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
            return -1;
        }
        data[len] = 0;
        if (type == NBD_REP_INFO && len >= 2) {
            uint16_t info = nbd_get16(data);
            if (info == NBD_INFO_EXPORT && len >= 12) {
                c->export_bytes = nbd_get64(data + 2);
                c->tflags = nbd_get16(data + 10);
                have_export = 1;
            } else if (info == NBD_INFO_BLOCK_SIZE && len >= 14) {
                c->min_block = nbd_get32(data + 2);
                c->max_block = nbd_get32(data + 10);
                hs->has_sizes = 1;
            } else if (info == NBD_INFO_DESCRIPTION) {
                parse_description((const char *)data + 2, hs);
            } /* other information: not asked for, ignored as the spec says */
        } else if (type == NBD_REP_ACK) {
            if (!have_export) {
                fl_errf(err, errlen, "%s ended NBD_OPT_GO without NBD_INFO_EXPORT (malformed NBD handshake)", t->where);
                return -1;
            }
            return 0;
        } else if (type == NBD_REP_ERR_UNSUP) {
            return 1;
        } else if (type & 0x80000000u) {
            const char *msg = len ? (const char *)data : "";
            if (type == NBD_REP_ERR_UNKNOWN)
                fl_errf(err, errlen, "%s has no export named '%s'%s%s", t->where, t->export_name, len ? ": " : "", msg);
            else if (type == NBD_REP_ERR_TLS_REQD)
                fl_errf(err, errlen, "%s requires TLS, which faultlab does not speak%s%s", t->where, len ? ": " : "", msg);
            else
                fl_errf(err, errlen, "%s refused export '%s' (%s)%s%s", t->where, t->export_name, rep_err_name(type), len ? ": " : "", msg);
            return -1;
        } /* another reply type (NBD_REP_SERVER, ...): not for GO, ignored */
    }
}

/* The old way into transmission, for servers without NBD_OPT_GO. A server
 * that has no such export closes the connection (the option has no error). */
static int opt_export_name(struct fl_conn *c, int no_zeroes, char *err, size_t errlen)
{
    const struct tcp_source *t = c->src;
    char cause[TCP_CAUSE_LEN];
    uint8_t r[10 + 124];
    size_t want = no_zeroes ? 10 : sizeof r;
    if (send_option(c, NBD_OPT_EXPORT_NAME, (const uint8_t *)t->export_name, (uint32_t)strlen(t->export_name), cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
        return -1;
    }
    if (recv_all(c, r, want, cause, sizeof cause)) {
        if (!strcmp(cause, "server closed the connection"))
            fl_errf(err, errlen, "%s closed the connection after NBD_OPT_EXPORT_NAME: no export named '%s'?", t->where, t->export_name);
        else
            fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
        return -1;
    }
    c->export_bytes = nbd_get64(r);
    c->tflags = nbd_get16(r + 8);
    return 0;
}

/* The fixed newstyle handshake; then: is this the export we expect? */
static int handshake(struct fl_conn *c, char *err, size_t errlen)
{
    const struct tcp_source *t = c->src;
    char cause[TCP_CAUSE_LEN];
    uint8_t g[NBD_GREETING_BYTES];
    struct hs_info hs = {0};
    start_deadline(c); /* one deadline for the whole handshake */
    if (recv_all(c, g, sizeof g, cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
        return -1;
    }
    if (nbd_get64(g) != NBD_MAGIC) {
        fl_errf(err, errlen, "%s is not an NBD server (its greeting does not start with NBDMAGIC)", t->where);
        return -1;
    }
    if (nbd_get64(g + 8) == NBD_OLDSTYLE_MAGIC) {
        fl_errf(err, errlen, "%s speaks the oldstyle NBD handshake, which faultlab does not (it needs newstyle)", t->where);
        return -1;
    }
    if (nbd_get64(g + 8) != NBD_IHAVEOPT) {
        fl_errf(err, errlen, "%s is not an NBD server (unexpected greeting)", t->where);
        return -1;
    }
    uint16_t hflags = nbd_get16(g + 16);
    int fixed = (hflags & NBD_FLAG_FIXED_NEWSTYLE) != 0, no_zeroes = fixed && (hflags & NBD_FLAG_NO_ZEROES);
    uint8_t cf[4];
    nbd_put32(cf, (fixed ? NBD_FLAG_C_FIXED_NEWSTYLE : 0) | (no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));
    if (send_all(c, cf, sizeof cf, 0, cause, sizeof cause)) {
        fl_errf(err, errlen, "%s did not answer the NBD handshake: %s", t->where, cause);
        return -1;
    }
    int rc = fixed ? opt_go(c, &hs, err, errlen) : 1;
    if (rc == 1)
        rc = opt_export_name(c, no_zeroes, err, errlen);
    if (rc)
        return -1;
    c->transmission = 1;
    if (!hs.has_sizes || !c->min_block || c->min_block > TCP_MAX_MIN_BLOCK || (c->min_block & (c->min_block - 1)) ||
        c->max_block < c->min_block) {
        c->min_block = 1; /* none, or not as the spec allows: the defaults */
        c->max_block = TCP_DEFAULT_MAX_BLOCK;
    }
    /* Contents are fill(seed, offset) on both sides, so a run may map any prefix
     * of a larger export: one server serves a whole matrix of region sizes. */
    if (c->export_bytes < t->base.region_bytes) {
        if (hs.faultlab)
            fl_errf(err, errlen, "server region is %llu bytes, smaller than this run's %llu (start the server with --region %llu or more)",
                    (unsigned long long)c->export_bytes, (unsigned long long)t->base.region_bytes,
                    (unsigned long long)t->base.region_bytes);
        else
            fl_errf(err, errlen, "server region is %llu bytes, smaller than this run's %llu (the export must hold the whole region)",
                    (unsigned long long)c->export_bytes, (unsigned long long)t->base.region_bytes);
        return -1;
    }
    /* Only faultlab's server says its seed; any other export's bytes are
     * verified as always, so a wrong one shows as a failed verification. */
    if (hs.has_seed && hs.seed != t->base.seed) {
        fl_errf(err, errlen, "server seed is %llu, expected %llu (start the server with --seed %llu)", (unsigned long long)hs.seed,
                (unsigned long long)t->base.seed, (unsigned long long)t->base.seed);
        return -1;
    }
    if (!(c->tflags & NBD_FLAG_SEND_FLUSH) && !(c->scratch = malloc(c->min_block))) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

static void tcp_disconnect(struct fl_conn *c)
{
    if (!c)
        return;
    if (c->fd >= 0 && (!c->broken || c->in_step)) {
        /* A soft disconnect, as the spec asks of a client: NBD_OPT_ABORT while
         * negotiating, NBD_CMD_DISC in transmission. Best effort, no wait. */
        uint8_t m[NBD_REQUEST_BYTES] = {0};
        size_t n = NBD_REQUEST_BYTES;
        if (c->transmission) {
            nbd_put32(m, NBD_REQUEST_MAGIC);
            nbd_put16(m + 6, NBD_CMD_DISC);
            nbd_put64(m + 8, c->next_cookie);
        } else {
            nbd_put64(m, NBD_IHAVEOPT);
            nbd_put32(m + 8, NBD_OPT_ABORT);
            n = NBD_OPT_HEADER_BYTES;
        }
        if (send(c->fd, m, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* the server is gone: nothing to say goodbye to */
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    free(c->scratch);
    free(c);
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
    c->next_cookie = 1;
    c->fd = open_socket(t->where, (const struct sockaddr *)&t->addr, t->addrlen, s->fetch_timeout_ms, err, errlen);
    int on = 1;
    if (c->fd >= 0 && t->client_rtt_ns && setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on)) {
        fl_errf(err, errlen, "client_rtt_us: cannot enable receive timestamps (SO_TIMESTAMPNS): %s", strerror(errno));
        close(c->fd);
        free(c);
        return -1;
    }
    if (c->fd < 0) {
        free(c);
        return -1;
    }
    if (handshake(c, err, errlen)) {
        tcp_disconnect(c);
        return -1;
    }
    *out = c;
    return 0;
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
    .write_runs = tcp_write_runs,
    .ping_ns = tcp_ping,
    .disconnect = tcp_disconnect,
    .destroy = tcp_destroy,
    .send_read = tcp_send_read,
    .recv_read = tcp_recv_read,
    .ready = tcp_ready,
    .poll_fd = tcp_poll_fd,
};

struct fl_source *fl_source_tcp_create(const struct fl_config *cfg, char *err, size_t errlen)
{
    if (cfg->port <= 0 || cfg->port > 65535) {
        fl_errf(err, errlen, "source=tcp needs port=N (the NBD server's port)");
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
    snprintf(t->export_name, sizeof t->export_name, "%s", cfg->export_name);
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
