/* The NBD server's event loop and public API (include/faultlab.h; threads
 * and files in nbd_server.h). The loop owns every connection: it accepts
 * (at max_conns in place of the oldest connection that gives a slot up, or
 * refusing), reads (with the kernel's receive timestamps where rx_stamps asks
 * for them), hands the bytes to the protocol (nbd_session.c), watches blocked
 * sockets for room, closes connections that time out, and is the only one
 * that closes a socket. */
#include "server/nbd_server.h"
#include "server/nbd_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define ID_LISTEN 0xffffffffull
#define ID_WAKE   0xfffffffeull

void nbd_log(struct fl_nbd_server *s, const char *peer, const char *fmt, ...)
{
    if (s->o.log_fd < 0)
        return;
    char line[512];
    int n = snprintf(line, sizeof line, "faultlab nbd %s: ", peer);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof line - 2)
        n = (int)sizeof line - 2;
    line[n++] = '\n';
    ssize_t k = write(s->o.log_fd, line, (size_t)n); /* one write: lines from one server never interleave */
    (void)k;
}

void nbd_wake_loop(struct fl_nbd_server *s)
{
    uint64_t one = 1;
    ssize_t k = write(s->wake_fd, &one, sizeof one);
    (void)k; /* fails only when the counter would overflow: a wake-up is pending anyway */
}

static uint64_t conn_id(const struct nbd_conn *c)
{
    return (uint64_t)c->gen << 32 | (uint32_t)c->slot;
}

void nbd_update_events(struct fl_nbd_server *s, struct nbd_conn *c)
{
    uint32_t ev = (!c->paused && !c->rd_eof ? EPOLLIN : 0) | (c->blocked ? EPOLLOUT : 0);
    if (ev == c->events)
        return;
    struct epoll_event e = {.events = ev, .data.u64 = conn_id(c)};
    if (epoll_ctl(s->ep, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->events = ev;
}

/* ---- connections ---- */

/* A close for cause is counted once, before the client can see the end: where
 * a violation is found (the connection closes later, once its replies are
 * out), or at the close. */
static void count_cause(struct fl_nbd_server *s, struct nbd_conn *c)
{
    if (!c->cause_counted)
        atomic_fetch_add(&s->st.closed_for_cause, 1);
    c->cause_counted = true;
}

static void close_conn(struct fl_nbd_server *s, struct nbd_conn *c, bool for_cause)
{
    atomic_fetch_add(&s->st.closed, 1); /* counted before the client can see the close */
    if (for_cause)
        count_cause(s, c);
    nbd_out_drop(s, c);
    epoll_ctl(s->ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    s->conns[c->slot] = NULL;
    s->nconns--;
    free(c->in);
    free(c);
    pthread_mutex_lock(&s->mu);
    bool others_wait = s->npaused > 0; /* its bytes may be the room they wait for */
    pthread_mutex_unlock(&s->mu);
    if (others_wait)
        nbd_wake_loop(s);
}

/* All of a finished connection's replies are in the kernel: end it gently. A
 * close() with unread input would reset the connection and drop what the
 * kernel has not delivered yet (the end of the last reply), so the server
 * sends its end of stream and closes once the client's arrives (input until
 * then is read and thrown away), or once the client has had as long as a
 * handshake may take (check_timeouts). */
static void end_drained(struct fl_nbd_server *s, struct nbd_conn *c)
{
    if (c->rd_eof) {
        close_conn(s, c, false);
    } else if (!c->shut_ns) {
        c->shut_ns = fl_now();
        shutdown(c->fd, SHUT_WR);
    }
}

/* The client is done (NBD_CMD_DISC, NBD_OPT_ABORT, end of input) or broke the
 * protocol: nothing more is run, the replies already queued go out whole, then
 * the connection ends (end_drained). */
static void finish(struct fl_nbd_server *s, struct nbd_conn *c)
{
    c->state = NBD_ST_DONE;
    pthread_mutex_lock(&s->mu);
    c->draining = true;
    nbd_update_events(s, c);
    bool empty = !c->head && !c->sending;
    pthread_mutex_unlock(&s->mu);
    if (empty)
        end_drained(s, c);
}

/* After the protocol ran on c's input: send what is due, then finish or go on.
 * A violation (logged where it was found) finishes the connection as the
 * client's own end does, so the replies to the requests before it are not cut
 * short (one more malformed message for the client). */
static void after_process(struct fl_nbd_server *s, struct nbd_conn *c, int rc)
{
    nbd_out_kick(s, c);
    if (rc < 0)
        count_cause(s, c);
    if (rc != 0)
        finish(s, c);
}

static void peer_name(const struct sockaddr_storage *a, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const void *)a;
        inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        snprintf(out, len, "%s:%u", host, ntohs(v4->sin_port));
    } else {
        const struct sockaddr_in6 *v6 = (const void *)a;
        inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        snprintf(out, len, "[%s]:%u", host, ntohs(v6->sin6_port));
    }
}

static bool in_handshake(const struct nbd_conn *c)
{
    return c->state == NBD_ST_FLAGS || c->state == NBD_ST_OPTS;
}

/* A reply held for its RTT: the connection waits on the server, not idly. */
static bool reply_held(struct fl_nbd_server *s, const struct nbd_conn *c, uint64_t now)
{
    pthread_mutex_lock(&s->mu);
    bool held = c->head && c->head->deadline > now;
    pthread_mutex_unlock(&s->mu);
    return held;
}

/* At max_conns, a newcomer takes the slot of the oldest connection that is
 * still in its handshake or already finished (its end of stream sent, waiting
 * for the client's): a real client finishes its handshake in a few round
 * trips, so connections that never do (idle, half-open, or ones that sent
 * garbage and keep their socket) cannot keep others out even until the
 * handshake timeout. Not displaced: a connection past its handshake, and one
 * whose option reply is held for its RTT (at RTT > 0 a real handshake spends
 * most of its time there). False: no connection gives its slot up. */
static bool make_room(struct fl_nbd_server *s, const char *newcomer)
{
    struct nbd_conn *oldest = NULL;
    uint64_t now = fl_now();
    for (uint32_t i = 0; i < s->o.max_conns; i++) {
        struct nbd_conn *c = s->conns[i];
        if (!c || (oldest && c->accepted_ns >= oldest->accepted_ns))
            continue;
        if (c->shut_ns || (in_handshake(c) && !reply_held(s, c, now)))
            oldest = c;
    }
    if (!oldest)
        return false;
    if (oldest->shut_ns)
        nbd_log(s, oldest->peer, "closed: finished %llu ms ago, its slot given to %s (max_conns)",
                (unsigned long long)((now - oldest->shut_ns) / 1000000), newcomer);
    else
        nbd_log(s, oldest->peer, "closed: handshake not finished after %llu ms, its slot given to %s (max_conns)",
                (unsigned long long)((now - oldest->accepted_ns) / 1000000), newcomer);
    close_conn(s, oldest, !oldest->shut_ns);
    return true;
}

static void accept_all(struct fl_nbd_server *s)
{
    for (;;) {
        struct sockaddr_storage a;
        socklen_t al = sizeof a;
        int fd = accept4(s->listen_fd, (struct sockaddr *)&a, &al, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment instead of spinning on the listener. */
                nbd_log(s, "listener", "cannot accept: %s; accepting again in 100 ms", strerror(errno));
                struct epoll_event e = {.events = 0, .data.u64 = ID_LISTEN};
                epoll_ctl(s->ep, EPOLL_CTL_MOD, s->listen_fd, &e);
                s->accept_paused_until = fl_now() + 100000000ull;
            }
            return; /* EAGAIN, or a connection that died in the backlog */
        }
        char peer[64];
        peer_name(&a, peer, sizeof peer);
        if (s->nconns >= s->o.max_conns && !make_room(s, peer)) {
            nbd_log(s, peer, "refused: %u connections open (max_conns)", s->nconns);
            atomic_fetch_add(&s->st.refused, 1);
            close(fd);
            continue;
        }
        struct nbd_conn *c = calloc(1, sizeof *c);
        if (c && !(c->in = malloc(NBD_IN_BYTES))) {
            free(c);
            c = NULL;
        }
        if (!c) {
            nbd_log(s, peer, "refused: out of memory");
            atomic_fetch_add(&s->st.refused, 1);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (s->o.rx_stamps) /* else rx_ns is the time the loop read the bytes */
            setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
        uint32_t slot = 0;
        while (s->conns[slot])
            slot++;
        if (++s->gen == 0)
            s->gen = 1;
        c->fd = fd;
        c->slot = (int)slot;
        c->gen = s->gen;
        c->heap_idx = -1;
        c->events = EPOLLIN;
        c->accepted_ns = fl_now();
        atomic_store(&c->last_active, c->accepted_ns);
        memcpy(c->peer, peer, sizeof peer);
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = conn_id(c)};
        if (epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &e)) {
            nbd_log(s, peer, "refused: epoll_ctl: %s", strerror(errno));
            atomic_fetch_add(&s->st.refused, 1);
            close(fd);
            free(c->in);
            free(c);
            continue;
        }
        s->conns[slot] = c;
        s->nconns++;
        atomic_fetch_add(&s->st.accepted, 1);
        after_process(s, c, nbd_session_greet(s, c));
    }
}

static void on_readable(struct fl_nbd_server *s, struct nbd_conn *c, uint32_t events)
{
    pthread_mutex_lock(&s->mu);
    bool reading = !c->paused && !c->rd_eof;
    pthread_mutex_unlock(&s->mu);
    if (!reading) { /* paused, or after the client's end: only an error or hang-up gets here */
        if (events & (EPOLLERR | EPOLLHUP))
            close_conn(s, c, false);
        return;
    }
    if (c->in_used) {
        memmove(c->in, c->in + c->in_used, c->in_have - c->in_used);
        c->in_have -= c->in_used;
        c->in_used = 0;
    }
    if (c->in_have == NBD_IN_BYTES) { /* cannot happen within the caps on options; never spin on it */
        nbd_log(s, c->peer, "closed: a message larger than the input buffer");
        close_conn(s, c, true);
        return;
    }
    char cbuf[CMSG_SPACE(sizeof(struct timespec)) * 2];
    struct iovec iov = {.iov_base = c->in + c->in_have, .iov_len = NBD_IN_BYTES - c->in_have};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(c->fd, &m, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n < 0) { /* reset by the client */
        close_conn(s, c, false);
        return;
    }
    if (n == 0) {
        c->rd_eof = true;
        finish(s, c);
        return;
    }
    c->rx_ns = fl_rx_time(&m);
    atomic_store(&c->last_active, fl_now());
    c->in_have += (size_t)n;
    after_process(s, c, nbd_session_process(s, c));
}

/* The sender asked: close failed and drained connections, resume paused ones. */
static void on_wake(struct fl_nbd_server *s)
{
    uint64_t v;
    ssize_t k = read(s->wake_fd, &v, sizeof v);
    (void)k;
    for (uint32_t i = 0; i < s->o.max_conns; i++) {
        struct nbd_conn *c = s->conns[i];
        if (!c)
            continue;
        pthread_mutex_lock(&s->mu);
        bool failed = c->failed, drained = c->draining && !c->head && !c->sending && !c->shut_ns, paused = c->paused;
        if (paused && !failed) {
            c->paused = false;
            s->npaused--;
            nbd_update_events(s, c);
        }
        pthread_mutex_unlock(&s->mu);
        if (failed)
            close_conn(s, c, false);
        else if (drained)
            end_drained(s, c);
        else if (paused)
            after_process(s, c, nbd_session_process(s, c)); /* pauses again if there is still no room */
    }
}

static void check_timeouts(struct fl_nbd_server *s, uint64_t now)
{
    if (s->accept_paused_until && now >= s->accept_paused_until) {
        struct epoll_event e = {.events = EPOLLIN, .data.u64 = ID_LISTEN};
        epoll_ctl(s->ep, EPOLL_CTL_MOD, s->listen_fd, &e);
        s->accept_paused_until = 0;
    }
    for (uint32_t i = 0; i < s->o.max_conns; i++) {
        struct nbd_conn *c = s->conns[i];
        if (!c)
            continue;
        if (c->shut_ns && now - c->shut_ns > s->o.handshake_ns) { /* its end sent, the client's never came */
            close_conn(s, c, false);
            continue;
        }
        if (in_handshake(c) && now - c->accepted_ns > s->o.handshake_ns) {
            nbd_log(s, c->peer, "closed: handshake not finished within %llu ms", (unsigned long long)(s->o.handshake_ns / 1000000));
            close_conn(s, c, true);
            continue;
        }
        if (c->state == NBD_ST_PAYLOAD && now - c->pay.started > s->o.payload_ns) {
            nbd_log(s, c->peer, "closed: WRITE payload of %llu bytes not received within %llu ms (%llu missing)",
                    (unsigned long long)c->pay.len, (unsigned long long)(s->o.payload_ns / 1000000), (unsigned long long)c->pay.left);
            close_conn(s, c, true);
            continue;
        }
        /* Idleness costs only a slot: a client may keep a connection it needs
         * later (a write-back, a prefetch connection) quiet for minutes, so it
         * is cut only while slots run short (3/4 of max_conns in use). A
         * reply held for its RTT is not idleness. */
        if (now - atomic_load(&c->last_active) > s->o.idle_ns && (uint64_t)s->nconns * 4 >= (uint64_t)s->o.max_conns * 3 &&
            !reply_held(s, c, now)) {
            if (!c->cause_counted) /* a violation was its line */
                nbd_log(s, c->peer, "closed: idle for %llu ms (nothing read or sent)", (unsigned long long)(s->o.idle_ns / 1000000));
            close_conn(s, c, true);
        }
    }
}

static void *loop_main(void *arg)
{
    struct fl_nbd_server *s = arg;
    uint64_t shortest = s->o.handshake_ns < s->o.idle_ns ? s->o.handshake_ns : s->o.idle_ns;
    shortest = shortest < s->o.payload_ns ? shortest : s->o.payload_ns;
    int tick_ms = (int)(shortest / 4000000); /* timeouts are checked a few times per the shortest */
    tick_ms = tick_ms < 5 ? 5 : tick_ms > 100 ? 100 : tick_ms;
    uint64_t next_check = fl_now() + (uint64_t)tick_ms * 1000000;
    struct epoll_event evs[64];
    while (!atomic_load(&s->stopping)) {
        int n = epoll_wait(s->ep, evs, 64, tick_ms);
        for (int i = 0; i < n && !atomic_load(&s->stopping); i++) {
            uint64_t id = evs[i].data.u64;
            if (id == ID_LISTEN) {
                accept_all(s);
            } else if (id == ID_WAKE) {
                on_wake(s);
            } else {
                struct nbd_conn *c = s->conns[(uint32_t)id];
                if (!c || c->gen != (uint32_t)(id >> 32))
                    continue; /* closed earlier in this batch */
                if (evs[i].events & EPOLLOUT)
                    nbd_out_writable(s, c);
                if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                    on_readable(s, c, evs[i].events);
            }
        }
        uint64_t now = fl_now();
        if (now >= next_check) {
            check_timeouts(s, now);
            next_check = now + (uint64_t)tick_ms * 1000000;
        }
    }
    for (uint32_t i = 0; i < s->o.max_conns; i++)
        if (s->conns[i])
            close_conn(s, s->conns[i], false);
    return NULL;
}

/* ---- API ---- */

static void destroy(struct fl_nbd_server *s)
{
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->ep >= 0)
        close(s->ep);
    if (s->wake_fd >= 0)
        close(s->wake_fd);
    nbd_store_free(&s->store);
    free(s->conns);
    free(s->heap);
    free(s->late);
    free(s);
}

static int open_listener(struct fl_nbd_server *s, char *err, size_t errlen)
{
    struct sockaddr_storage a = {0};
    socklen_t al;
    struct sockaddr_in *v4 = (void *)&a;
    struct sockaddr_in6 *v6 = (void *)&a;
    if (inet_pton(AF_INET, s->o.listen, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)s->o.port);
        al = sizeof *v4;
    } else {
        inet_pton(AF_INET6, s->o.listen, &v6->sin6_addr); /* checked by the spec */
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)s->o.port);
        al = sizeof *v6;
    }
    int one = 1;
    s->listen_fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->listen_fd < 0 || setsockopt(s->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(s->listen_fd, (struct sockaddr *)&a, al) || listen(s->listen_fd, SOMAXCONN) ||
        getsockname(s->listen_fd, (struct sockaddr *)&a, &al)) {
        fl_errf(err, errlen, "nbd server: cannot listen on %s port %d: %s", s->o.listen, s->o.port, strerror(errno));
        return -1;
    }
    s->port = ntohs(a.ss_family == AF_INET ? v4->sin_port : v6->sin6_port);
    return 0;
}

fl_nbd_server *fl_nbd_start(const char *spec, char *err, size_t errlen)
{
    return nbd_start_over(spec, NULL, err, errlen);
}

fl_nbd_server *nbd_start_over(const char *spec, const uint8_t *mem, char *err, size_t errlen)
{
    struct fl_nbd_server *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "nbd server: out of memory");
        return NULL;
    }
    s->listen_fd = s->ep = s->wake_fd = -1;
    if (nbd_opts_parse(spec, &s->o, err, errlen))
        goto fail;
    nbd_store_init(&s->store, s->o.region, s->o.seed, s->o.store_cap);
    s->store.mem = mem;
    s->conns = calloc(s->o.max_conns, sizeof *s->conns);
    s->heap = calloc(s->o.max_conns, sizeof *s->heap);
    s->late = malloc(NBD_LATE_RING * sizeof *s->late);
    if (!s->conns || !s->heap || !s->late) {
        fl_errf(err, errlen, "nbd server: out of memory");
        goto fail;
    }
    if (open_listener(s, err, errlen))
        goto fail;
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event l = {.events = EPOLLIN, .data.u64 = ID_LISTEN}, w = {.events = EPOLLIN, .data.u64 = ID_WAKE};
    if (s->ep < 0 || s->wake_fd < 0 || epoll_ctl(s->ep, EPOLL_CTL_ADD, s->listen_fd, &l) ||
        epoll_ctl(s->ep, EPOLL_CTL_ADD, s->wake_fd, &w)) {
        fl_errf(err, errlen, "nbd server: cannot create its descriptors: %s", strerror(errno));
        goto fail;
    }
    atomic_store(&s->next_deadline, UINT64_MAX);
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->send_cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_cond_init(&s->idle_cv, NULL);
    /* cpu=: both threads start there. */
    int rc = fl_thread_start_on(&s->sender, s->o.cpu, nbd_sender_main, s);
    if (!rc && (rc = fl_thread_start_on(&s->loop, s->o.cpu, loop_main, s))) {
        pthread_mutex_lock(&s->mu);
        s->sender_stop = true;
        pthread_cond_signal(&s->send_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->sender, NULL);
    }
    if (rc) {
        fl_errf(err, errlen, "nbd server: cannot start its threads: %s", strerror(rc));
        goto fail_sync;
    }
    return s;
fail_sync:
    pthread_cond_destroy(&s->send_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
fail:
    destroy(s);
    return NULL;
}

int fl_nbd_port(fl_nbd_server *s)
{
    return s ? s->port : -1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int fl_nbd_stats(fl_nbd_server *s, char *json, size_t len)
{
    if (!s || !json || !len)
        return -1;
    uint64_t *late = malloc(NBD_LATE_RING * sizeof *late);
    if (!late) {
        fl_errf(json, len, "out of memory");
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    uint64_t nlate = s->nlate < NBD_LATE_RING ? s->nlate : NBD_LATE_RING;
    memcpy(late, s->late, nlate * sizeof *late);
    uint64_t queued = s->total_queued, max_q = s->max_total_queued, max_cq = s->max_conn_queued, pauses = s->pauses;
    uint64_t wakeups = s->sender_wakeups;
    uint64_t late_max = s->late_max, samples = s->nlate;
    pthread_mutex_unlock(&s->mu);
    qsort(late, nlate, sizeof *late, cmp_u64);
    uint64_t p50 = nlate ? late[(nlate - 1) / 2] : 0;
    free(late);
    struct nbd_stats *t = &s->st;
    uint64_t accepted = atomic_load(&t->accepted), closed = atomic_load(&t->closed);
    int n = snprintf(json, len,
                     "{\"listen\":\"%s\",\"port\":%d,\"region\":%llu,\"rtt_us\":%llu,\"requests\":%llu,\"reads\":%llu,\"writes\":%llu,"
                     "\"flushes\":%llu,\"errors\":%llu,\"bytes_read\":%llu,\"bytes_written\":%llu,"
                     "\"conns_accepted\":%llu,\"conns_refused\":%llu,\"conns_closed\":%llu,\"conns_closed_for_cause\":%llu,"
                     "\"conns_open\":%llu,\"queued_bytes\":%llu,\"max_queued_bytes\":%llu,\"max_conn_queued_bytes\":%llu,"
                     "\"queue_cap\":%llu,\"total_cap\":%llu,\"paused_reads\":%llu,\"late_samples\":%llu,"
                     "\"late_p50_ns\":%llu,\"late_max_ns\":%llu,\"sender_wakeups\":%llu}",
                     s->o.listen, s->port, (unsigned long long)s->o.region, (unsigned long long)(s->o.rtt_ns / 1000),
                     (unsigned long long)atomic_load(&t->requests), (unsigned long long)atomic_load(&t->reads),
                     (unsigned long long)atomic_load(&t->writes), (unsigned long long)atomic_load(&t->flushes),
                     (unsigned long long)atomic_load(&t->errors), (unsigned long long)atomic_load(&t->bytes_read),
                     (unsigned long long)atomic_load(&t->bytes_written), (unsigned long long)accepted,
                     (unsigned long long)atomic_load(&t->refused), (unsigned long long)closed,
                     (unsigned long long)atomic_load(&t->closed_for_cause), (unsigned long long)(accepted - closed),
                     (unsigned long long)queued, (unsigned long long)max_q, (unsigned long long)max_cq, (unsigned long long)s->o.queue_cap,
                     (unsigned long long)s->o.total_cap, (unsigned long long)pauses, (unsigned long long)samples, (unsigned long long)p50,
                     (unsigned long long)late_max, (unsigned long long)wakeups);
    if (n < 0 || (size_t)n >= len) {
        fl_errf(json, len, "stats: buffer too small");
        return -1;
    }
    return 0;
}

void fl_nbd_stop(fl_nbd_server *s)
{
    if (!s)
        return;
    atomic_store(&s->stopping, true);
    nbd_wake_loop(s);
    pthread_join(s->loop, NULL); /* it closes every connection */
    pthread_mutex_lock(&s->mu);
    s->sender_stop = true;
    pthread_cond_signal(&s->send_cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->sender, NULL);
    pthread_cond_destroy(&s->send_cv);
    pthread_cond_destroy(&s->idle_cv);
    pthread_mutex_destroy(&s->mu);
    destroy(s);
}
