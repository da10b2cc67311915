/* Server-side emulated latency, timed where it can be precise: the chunk
 * server's I/O for connections with rtt > 0 (harness/server/delayed-io.ts).
 *
 * The Node.js event loop reads a request, and its write of a due answer
 * returns, a varying and often large time after the fact (`faultlab calibrate
 * --breakdown` measures both; docs/latency.md), so the delay is neither
 * started nor ended there:
 *  - one hub thread reads every attached connection with the kernel's receive
 *    timestamp (SO_TIMESTAMPNS) and forwards (connection, time, bytes) records
 *    into a socket the event loop reads. The delay counts from that timestamp,
 *    so the event loop's own lateness falls inside the delay.
 *  - the event loop parses and runs each request when it reads it and hands the
 *    answer here with its deadline; a sender thread per connection holds the
 *    answers in order and sends each at its deadline (sleep, then spin the last
 *    FL_SPIN_NS), answers due together in one sendmsg.
 * Answer bodies are not copied: the caller keeps each alive until
 * fl_dio_sent() reports it sent or fl_dio_detach() has returned.
 * Cost: each connection's sender spins up to FL_SPIN_NS before every deadline,
 * so N connections at an RTT of R use up to N * FL_SPIN_NS / R of a CPU, CPU
 * the client competes for at sub-ms RTTs. */
#define _GNU_SOURCE
#include "core/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DIO_SLOTS      1024 /* connections per hub */
#define DIO_READ_BYTES (256u << 10) /* one read, one DATA record at most */
#define DIO_MAX_UNSENT (32u << 20) /* stop reading a connection with this much unsent... */
#define DIO_MAX_ITEMS  65536u /* ...or this many answers queued */
#define DIO_RING       4096u /* send times kept for fl_dio_sent */
#define DIO_HEAD_MAX   256u /* answer bytes copied in (headers, HELLO) */
#define DIO_IOV        64 /* iovecs per sendmsg */

struct item {
    struct item *next;
    uint64_t deadline, seq;
    const uint8_t *body; /* the caller's, alive until reported sent */
    size_t body_len, head_len;
    uint8_t head[DIO_HEAD_MAX];
};

struct fl_dio_conn {
    struct fl_dio_hub *hub;
    uint32_t id;
    int fd; /* our own dup: the caller may close its fd at any time */
    pthread_t sender;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct item *head, *tail;
    uint64_t next_seq, sent;
    size_t unsent_bytes, items;
    bool finishing, throttled, done, done_reported;
    _Atomic bool closing;
    int failed; /* errno of a failed send */
    uint64_t sent_at[DIO_RING]; /* when each send began */
};

struct fl_dio_hub {
    int ep, wake, stop, notify_out; /* wake: a sender is done; stop: fl_dio_close */
    pthread_t thread;
    pthread_mutex_t mu; /* slots */
    struct fl_dio_conn *slots[DIO_SLOTS];
    uint32_t next_id;
    uint8_t *buf; /* a record header, then the bytes read */
};

static void notify_hub(int efd)
{
    uint64_t one = 1;
    ssize_t k = write(efd, &one, sizeof one);
    (void)k; /* an eventfd write fails only when the counter would overflow */
}

/* ---- sender: one thread per connection ---- */

/* With c->mu held: sleep until FL_SPIN_NS before the deadline (a new answer
 * or a close wakes it early), then spin without the lock: a sleeping thread
 * wakes late by a scheduler's whim, a spinning one on time (`faultlab
 * calibrate` reports both lateness figures). Nonzero if closing. */
static int wait_for(struct fl_dio_conn *c, uint64_t deadline)
{
    while (!c->closing && fl_now() + FL_SPIN_NS < deadline) {
        uint64_t t = deadline - FL_SPIN_NS;
        struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
        pthread_cond_timedwait(&c->cv, &c->mu, &ts);
    }
    if (c->closing)
        return 1;
    pthread_mutex_unlock(&c->mu);
    while (fl_now() < deadline && !c->closing)
        ;
    pthread_mutex_lock(&c->mu);
    return c->closing;
}

/* All of iov out, waiting for room when the client reads slowly. 0 or errno. */
static int send_all(struct fl_dio_conn *c, struct iovec *iov, int n)
{
    while (n > 0) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t k = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return errno;
            struct pollfd p = {.fd = c->fd, .events = POLLOUT};
            while (!c->closing && poll(&p, 1, 100) == 0)
                ;
            if (c->closing)
                return EPIPE;
            continue;
        }
        while (n > 0 && (size_t)k >= iov->iov_len) {
            k -= (ssize_t)iov->iov_len;
            iov++;
            n--;
        }
        if (n > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + k;
            iov->iov_len -= (size_t)k;
        }
    }
    return 0;
}

/* With c->mu held: read the connection again once its queue has room. */
static void maybe_unthrottle(struct fl_dio_conn *c)
{
    if (!c->throttled || c->unsent_bytes > DIO_MAX_UNSENT / 2 || c->items > DIO_MAX_ITEMS / 2)
        return;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
    if (epoll_ctl(c->hub->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
        c->throttled = false;
}

static void *sender_main(void *arg)
{
    struct fl_dio_conn *c = arg;
    prctl(PR_SET_TIMERSLACK, 1UL); /* the default 50 us slack would be added to every sleep */
    pthread_mutex_lock(&c->mu);
    for (;;) {
        while (!c->head && !c->closing && !c->finishing)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->closing)
            break;
        if (!c->head) { /* finishing and everything is out: end our side */
            shutdown(c->fd, SHUT_WR);
            break;
        }
        if (wait_for(c, c->head->deadline))
            break;
        /* Everything due now leaves in one sendmsg. */
        struct iovec iov[DIO_IOV];
        int n = 0;
        uint64_t now = fl_now();
        struct item *batch = c->head, *it = c->head;
        while (it && it->deadline <= now && n + 2 <= DIO_IOV) {
            iov[n++] = (struct iovec){.iov_base = it->head, .iov_len = it->head_len};
            if (it->body_len)
                iov[n++] = (struct iovec){.iov_base = (void *)it->body, .iov_len = it->body_len};
            it = it->next;
        }
        c->head = it;
        if (!it)
            c->tail = NULL;
        pthread_mutex_unlock(&c->mu);
        /* Sent when the send starts: on loopback sendmsg goes on to deliver
         * the bytes and wake the client, which is the way back, not lateness. */
        uint64_t t = fl_now();
        int err = send_all(c, iov, n);
        pthread_mutex_lock(&c->mu);
        while (batch != it) {
            struct item *next = batch->next;
            c->sent_at[batch->seq % DIO_RING] = t;
            c->sent = batch->seq + 1;
            c->unsent_bytes -= batch->head_len + batch->body_len;
            c->items--;
            free(batch);
            batch = next;
        }
        if (err) {
            c->failed = err;
            break;
        }
        maybe_unthrottle(c);
    }
    while (c->head) { /* closing or failed: the rest is dropped */
        struct item *next = c->head->next;
        free(c->head);
        c->head = next;
    }
    c->tail = NULL;
    c->done = true;
    pthread_mutex_unlock(&c->mu);
    notify_hub(c->hub->wake);
    return NULL;
}

int64_t fl_dio_send(struct fl_dio_conn *c, uint64_t deadline_ns, const uint8_t *head, size_t head_len, const uint8_t *body, size_t body_len)
{
    if (head_len == 0 || head_len > DIO_HEAD_MAX)
        return -EINVAL;
    struct item *it = malloc(sizeof *it);
    if (!it)
        return -ENOMEM;
    *it = (struct item){.deadline = deadline_ns, .body = body, .body_len = body ? body_len : 0, .head_len = head_len};
    memcpy(it->head, head, head_len);
    pthread_mutex_lock(&c->mu);
    if (c->done || c->finishing || c->closing) {
        int e = c->failed ? c->failed : EPIPE;
        pthread_mutex_unlock(&c->mu);
        free(it);
        return -e;
    }
    const uint64_t seq = it->seq = c->next_seq++; /* once unlocked, the sender may send and free it */
    bool was_empty = !c->head;
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    c->unsent_bytes += it->head_len + it->body_len;
    c->items++;
    if (was_empty) /* otherwise the sender is already waiting for an earlier deadline */
        pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return (int64_t)seq;
}

void fl_dio_finish(struct fl_dio_conn *c)
{
    pthread_mutex_lock(&c->mu);
    c->finishing = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

uint64_t fl_dio_sent(struct fl_dio_conn *c, uint64_t from, uint64_t *sent_ns, uint32_t max)
{
    pthread_mutex_lock(&c->mu);
    uint64_t sent = c->sent;
    for (uint64_t s = from, i = 0; s < sent && i < max; s++, i++)
        sent_ns[i] = s + DIO_RING >= sent ? c->sent_at[s % DIO_RING] : 0; /* 0: overwritten */
    pthread_mutex_unlock(&c->mu);
    return sent;
}

/* ---- hub: reads every connection, stamps, forwards ---- */

/* All of buf into the notify socket; gives up only when fl_dio_close stops the hub. */
static int emit(struct fl_dio_hub *h, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t k = send(h->notify_out, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k > 0) {
            buf += k;
            len -= (size_t)k;
            continue;
        }
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 && errno != EAGAIN)
            return -1; /* the reader is gone */
        struct pollfd p[2] = {{.fd = h->notify_out, .events = POLLOUT}, {.fd = h->stop, .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            return -1;
        if (p[1].revents)
            return -1;
    }
    return 0;
}

static int emit_record(struct fl_dio_hub *h, uint32_t id, uint32_t kind, uint32_t err, uint64_t ts)
{
    struct fl_dio_record r = {.id = id, .kind = kind, .err = err, .ts_ns = ts};
    return emit(h, (const uint8_t *)&r, sizeof r);
}

/* One read of a readable connection: a DATA, EOF or ERROR record. Nonzero when stopping. */
static int read_conn(struct fl_dio_hub *h, uint32_t id)
{
    struct fl_dio_record *r = (struct fl_dio_record *)h->buf;
    pthread_mutex_lock(&h->mu);
    struct fl_dio_conn *c = h->slots[id % DIO_SLOTS];
    if (!c || c->id != id) { /* detached meanwhile */
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    bool full = c->unsent_bytes >= DIO_MAX_UNSENT || c->items >= DIO_MAX_ITEMS;
    if (full) { /* the sender reads it again once there is room */
        struct epoll_event ev = {.events = 0, .data.u64 = id};
        if (epoll_ctl(h->ep, EPOLL_CTL_MOD, c->fd, &ev) == 0)
            c->throttled = true;
    }
    pthread_mutex_unlock(&c->mu);
    if (full) {
        pthread_mutex_unlock(&h->mu);
        return 0;
    }
    char cbuf[CMSG_SPACE(sizeof(struct timespec)) * 2];
    struct iovec iov = {.iov_base = h->buf + sizeof *r, .iov_len = DIO_READ_BYTES};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT);
    int e = errno;
    if (n <= 0 && !(n < 0 && (e == EAGAIN || e == EINTR)))
        epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL); /* EOF or error: nothing more to read */
    pthread_mutex_unlock(&h->mu);
    if (n < 0 && (e == EAGAIN || e == EINTR))
        return 0;
    if (n <= 0)
        return emit_record(h, id, n == 0 ? FL_DIO_EOF : FL_DIO_ERROR, n == 0 ? 0 : (uint32_t)e, fl_now());
    *r = (struct fl_dio_record){.id = id, .kind = FL_DIO_DATA, .len = (uint32_t)n, .ts_ns = fl_rx_time(&m)};
    return emit(h, h->buf, sizeof *r + (size_t)n);
}

/* DONE records for connections whose sender has ended. Nonzero when stopping. */
static int report_done(struct fl_dio_hub *h)
{
    uint64_t v;
    ssize_t k = read(h->wake, &v, sizeof v);
    (void)k;
    for (;;) {
        uint32_t id = 0, err = 0;
        bool found = false;
        pthread_mutex_lock(&h->mu);
        for (int i = 0; i < DIO_SLOTS && !found; i++) {
            struct fl_dio_conn *c = h->slots[i];
            if (!c)
                continue;
            pthread_mutex_lock(&c->mu);
            if (c->done && !c->done_reported) {
                c->done_reported = found = true;
                id = c->id;
                err = (uint32_t)c->failed;
            }
            pthread_mutex_unlock(&c->mu);
        }
        pthread_mutex_unlock(&h->mu);
        if (!found)
            return 0;
        if (emit_record(h, id, FL_DIO_DONE, err, fl_now()))
            return 1;
    }
}

#define WAKE_ID ((uint64_t)1 << 32)
#define STOP_ID ((uint64_t)2 << 32)

static void *hub_main(void *arg)
{
    struct fl_dio_hub *h = arg;
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(h->ep, evs, 64, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return NULL;
        for (int i = 0; i < n; i++) {
            uint64_t d = evs[i].data.u64;
            if (d == STOP_ID)
                return NULL;
            if (d == WAKE_ID ? report_done(h) : read_conn(h, (uint32_t)d))
                return NULL;
        }
    }
}

struct fl_dio_hub *fl_dio_open(int *notify_fd, char *err, size_t errlen)
{
    struct fl_dio_hub *h = calloc(1, sizeof *h);
    int sv[2] = {-1, -1};
    if (!h || !(h->buf = malloc(sizeof(struct fl_dio_record) + DIO_READ_BYTES))) {
        fl_errf(err, errlen, "delayed I/O: out of memory");
        goto fail;
    }
    h->ep = epoll_create1(EPOLL_CLOEXEC);
    h->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    h->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (h->ep < 0 || h->wake < 0 || h->stop < 0 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv)) {
        fl_errf(err, errlen, "delayed I/O: cannot create its descriptors: %s", strerror(errno));
        goto fail;
    }
    h->notify_out = sv[0];
    struct epoll_event wake = {.events = EPOLLIN, .data.u64 = WAKE_ID}, stop = {.events = EPOLLIN, .data.u64 = STOP_ID};
    if (epoll_ctl(h->ep, EPOLL_CTL_ADD, h->wake, &wake) || epoll_ctl(h->ep, EPOLL_CTL_ADD, h->stop, &stop)) {
        fl_errf(err, errlen, "delayed I/O: epoll_ctl: %s", strerror(errno));
        goto fail;
    }
    pthread_mutex_init(&h->mu, NULL);
    if ((errno = pthread_create(&h->thread, NULL, hub_main, h))) {
        fl_errf(err, errlen, "delayed I/O: cannot start its thread: %s", strerror(errno));
        pthread_mutex_destroy(&h->mu);
        goto fail;
    }
    *notify_fd = sv[1];
    return h;
fail:
    if (h) {
        for (int i = 0; i < 2; i++)
            if (sv[i] >= 0)
                close(sv[i]);
        if (h->ep > 0)
            close(h->ep);
        if (h->wake > 0)
            close(h->wake);
        if (h->stop > 0)
            close(h->stop);
        free(h->buf);
        free(h);
    }
    return NULL;
}

struct fl_dio_conn *fl_dio_attach(struct fl_dio_hub *h, int fd, uint32_t *id, char *err, size_t errlen)
{
    struct fl_dio_conn *c = calloc(1, sizeof *c);
    if (!c) {
        fl_errf(err, errlen, "delayed I/O: out of memory");
        return NULL;
    }
    c->hub = h;
    int one = 1;
    c->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (c->fd < 0 || setsockopt(c->fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one)) {
        fl_errf(err, errlen, "delayed I/O: cannot take socket %d: %s", fd, strerror(errno));
        goto fail;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_lock(&h->mu);
    for (int tries = 0; tries < DIO_SLOTS && !c->id; tries++) {
        uint32_t cand = ++h->next_id; /* 0 (after wrapping) means none */
        if (!cand || h->slots[cand % DIO_SLOTS])
            continue;
        c->id = cand;
    }
    if (!c->id) {
        pthread_mutex_unlock(&h->mu);
        fl_errf(err, errlen, "delayed I/O: more than %d connections", DIO_SLOTS);
        goto fail_sync;
    }
    if ((errno = pthread_create(&c->sender, NULL, sender_main, c))) {
        pthread_mutex_unlock(&h->mu);
        fl_errf(err, errlen, "delayed I/O: cannot start a sender thread: %s", strerror(errno));
        goto fail_sync;
    }
    h->slots[c->id % DIO_SLOTS] = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = c->id};
    int rc = epoll_ctl(h->ep, EPOLL_CTL_ADD, c->fd, &ev);
    pthread_mutex_unlock(&h->mu);
    if (rc) {
        fl_errf(err, errlen, "delayed I/O: epoll_ctl: %s", strerror(errno));
        fl_dio_detach(c);
        return NULL;
    }
    *id = c->id;
    return c;
fail_sync:
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
fail:
    if (c->fd >= 0)
        close(c->fd);
    free(c);
    return NULL;
}

void fl_dio_detach(struct fl_dio_conn *c)
{
    struct fl_dio_hub *h = c->hub;
    pthread_mutex_lock(&h->mu);
    if (h->slots[c->id % DIO_SLOTS] == c)
        h->slots[c->id % DIO_SLOTS] = NULL;
    epoll_ctl(h->ep, EPOLL_CTL_DEL, c->fd, NULL); /* ENOENT after EOF: fine */
    pthread_mutex_unlock(&h->mu);
    pthread_mutex_lock(&c->mu);
    c->closing = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    shutdown(c->fd, SHUT_RDWR); /* wakes a sender waiting for room */
    pthread_join(c->sender, NULL);
    close(c->fd);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void fl_dio_close(struct fl_dio_hub *h)
{
    for (int i = 0; i < DIO_SLOTS; i++)
        if (h->slots[i])
            fl_dio_detach(h->slots[i]);
    notify_hub(h->stop);
    pthread_join(h->thread, NULL);
    close(h->notify_out);
    close(h->ep);
    close(h->wake);
    close(h->stop);
    pthread_mutex_destroy(&h->mu);
    free(h->buf);
    free(h);
}
