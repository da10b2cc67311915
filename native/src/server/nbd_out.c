/* Reply queues and the sender (nbd_server.h). Each connection's replies wait
 * in order; the sender keeps the connections that have something to send in a
 * min-heap by their first reply's deadline. Every request on a server has the
 * same delay, so a connection's deadlines never decrease and its replies
 * leave in order while pipelined requests overlap: each waits for its own
 * deadline only. Bytes are reserved before a request runs, so the caps hold
 * for queued bytes at every moment. */
#include "server/nbd_server.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define OUT_IOV 64

struct nbd_item *nbd_item_new(size_t len, uint64_t deadline, bool timed)
{
    struct nbd_item *it = malloc(sizeof *it + len);
    if (it)
        *it = (struct nbd_item){.deadline = deadline, .len = len, .timed = timed};
    return it;
}

/* ---- the heap (under mu) ---- */

static uint64_t key(const struct nbd_conn *c)
{
    return c->head->deadline;
}

static void heap_set(struct fl_nbd_server *s, uint32_t i, struct nbd_conn *c)
{
    s->heap[i] = c;
    c->heap_idx = (int)i;
}

static void sift_up(struct fl_nbd_server *s, uint32_t i)
{
    struct nbd_conn *c = s->heap[i];
    while (i > 0 && key(s->heap[(i - 1) / 2]) > key(c)) {
        heap_set(s, i, s->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(s, i, c);
}

static void sift_down(struct fl_nbd_server *s, uint32_t i)
{
    struct nbd_conn *c = s->heap[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = l;
        if (l >= s->nheap)
            break;
        if (l + 1 < s->nheap && key(s->heap[l + 1]) < key(s->heap[l]))
            m = l + 1;
        if (key(s->heap[m]) >= key(c))
            break;
        heap_set(s, i, s->heap[m]);
        i = m;
    }
    heap_set(s, i, c);
}

static void heap_insert(struct fl_nbd_server *s, struct nbd_conn *c)
{
    heap_set(s, s->nheap++, c);
    sift_up(s, (uint32_t)c->heap_idx);
    if (s->heap[0] == c) { /* a new first deadline: the sender may be waiting for a later one */
        s->min_changed = true;
        if (key(c) < atomic_load(&s->next_deadline)) /* only ever earlier: ends a spin, never lengthens it */
            atomic_store(&s->next_deadline, key(c));
    }
}

static void heap_remove(struct fl_nbd_server *s, struct nbd_conn *c)
{
    uint32_t i = (uint32_t)c->heap_idx;
    c->heap_idx = -1;
    struct nbd_conn *last = s->heap[--s->nheap];
    if (last == c)
        return;
    heap_set(s, i, last);
    sift_up(s, i);
    sift_down(s, (uint32_t)last->heap_idx);
}

/* ---- room ---- */

bool nbd_out_reserve(struct fl_nbd_server *s, struct nbd_conn *c, uint64_t need)
{
    pthread_mutex_lock(&s->mu);
    bool room = c->queued + need <= s->o.queue_cap && s->total_queued + need <= s->o.total_cap;
    if (room) {
        c->queued += need;
        s->total_queued += need;
        if (c->queued > s->max_conn_queued)
            s->max_conn_queued = c->queued;
        if (s->total_queued > s->max_total_queued)
            s->max_total_queued = s->total_queued;
    } else if (!c->paused) { /* read no more until the sender frees room */
        c->paused = true;
        s->npaused++;
        s->pauses++;
        nbd_update_events(s, c);
    }
    pthread_mutex_unlock(&s->mu);
    return room;
}

static void release(struct fl_nbd_server *s, struct nbd_conn *c, uint64_t n)
{
    c->queued -= n;
    s->total_queued -= n;
}

void nbd_out_unreserve(struct fl_nbd_server *s, struct nbd_conn *c, uint64_t n)
{
    pthread_mutex_lock(&s->mu);
    release(s, c, n);
    pthread_mutex_unlock(&s->mu);
}

void nbd_out_queue(struct fl_nbd_server *s, struct nbd_conn *c, struct nbd_item *it)
{
    pthread_mutex_lock(&s->mu);
    if (c->tail)
        c->tail->next = it;
    else
        c->head = it;
    c->tail = it;
    if (c->heap_idx < 0 && !c->sending && !c->blocked && c->head == it)
        heap_insert(s, c);
    pthread_mutex_unlock(&s->mu);
}

/* ---- sending ---- */

static void record_late(struct fl_nbd_server *s, const struct nbd_item *it)
{
    if (!it->timed)
        return;
    uint64_t late = it->first_sent > it->deadline ? it->first_sent - it->deadline : 0;
    s->late[s->nlate++ % NBD_LATE_RING] = late;
    if (late > s->late_max)
        s->late_max = late;
}

/* Under mu, c in the heap: send every due reply of c in one sendmsg, without
 * the lock while sending (c->sending keeps the loop from closing c). */
static void flush(struct fl_nbd_server *s, struct nbd_conn *c)
{
    heap_remove(s, c);
    struct iovec iov[OUT_IOV];
    int n = 0;
    size_t want = 0;
    uint64_t now = fl_now();
    for (struct nbd_item *it = c->head; it && it->deadline <= now && n < OUT_IOV; it = it->next) {
        iov[n++] = (struct iovec){.iov_base = it->data + it->sent, .iov_len = it->len - it->sent};
        want += it->len - it->sent;
    }
    c->sending = true;
    pthread_mutex_unlock(&s->mu);
    uint64_t t = fl_now(); /* sent when the send starts */
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t k = sendmsg(c->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
    int e = errno;
    pthread_mutex_lock(&s->mu);
    c->sending = false;
    uint64_t freed = 0;
    size_t left = k > 0 ? (size_t)k : 0;
    if (k > 0)
        atomic_store(&c->last_active, t);
    while (left && c->head) {
        struct nbd_item *it = c->head;
        if (it->sent == 0)
            it->first_sent = t;
        size_t rest = it->len - it->sent;
        if (left < rest) {
            it->sent += left;
            break;
        }
        left -= rest;
        record_late(s, it);
        freed += it->len;
        c->head = it->next;
        if (!c->head)
            c->tail = NULL;
        free(it);
    }
    release(s, c, freed);
    if ((k >= 0 && (size_t)k < want) || (k < 0 && (e == EAGAIN || e == EINTR))) {
        c->blocked = true; /* the loop watches for room (nbd_out_writable) */
        nbd_update_events(s, c);
    } else if (k < 0) {
        c->failed = true; /* the client is gone: the loop closes c */
    } else if (c->head) {
        heap_insert(s, c);
    }
    pthread_cond_broadcast(&s->idle_cv);
    if (c->failed || (c->draining && !c->head) || (freed && s->npaused))
        nbd_wake_loop(s);
}

void nbd_out_kick(struct fl_nbd_server *s, struct nbd_conn *c)
{
    pthread_mutex_lock(&s->mu);
    if (c->heap_idx >= 0 && c->head->deadline <= fl_now())
        flush(s, c);
    /* Wake the sender only for a reply it has to send: one this loop just sent
     * (RTT 0) left nothing, and a wake-up per reply would cost a context switch each. */
    if (s->min_changed) {
        s->min_changed = false;
        if (s->nheap)
            pthread_cond_signal(&s->send_cv);
    }
    pthread_mutex_unlock(&s->mu);
}

void nbd_out_writable(struct fl_nbd_server *s, struct nbd_conn *c)
{
    pthread_mutex_lock(&s->mu);
    c->blocked = false;
    nbd_update_events(s, c);
    if (c->head && !c->sending && c->heap_idx < 0)
        heap_insert(s, c);
    pthread_mutex_unlock(&s->mu);
    nbd_out_kick(s, c);
}

void nbd_out_drop(struct fl_nbd_server *s, struct nbd_conn *c)
{
    pthread_mutex_lock(&s->mu);
    while (c->sending)
        pthread_cond_wait(&s->idle_cv, &s->mu);
    if (c->heap_idx >= 0)
        heap_remove(s, c);
    while (c->head) {
        struct nbd_item *it = c->head;
        c->head = it->next;
        free(it);
    }
    c->tail = NULL;
    release(s, c, c->queued); /* what was queued and what was reserved */
    if (c->paused) {
        c->paused = false;
        s->npaused--;
    }
    pthread_mutex_unlock(&s->mu);
}

void *nbd_sender_main(void *arg)
{
    struct fl_nbd_server *s = arg;
    prctl(PR_SET_TIMERSLACK, 1UL); /* the default 50 us slack would be added to every sleep */
    pthread_mutex_lock(&s->mu);
    while (!s->sender_stop) {
        s->min_changed = false;
        if (!s->nheap) {
            pthread_cond_wait(&s->send_cv, &s->mu);
            s->sender_wakeups++;
            continue;
        }
        struct nbd_conn *c = s->heap[0];
        uint64_t due = key(c), now = fl_now();
        if (due > now + FL_SPIN_NS) { /* sleep; a new earlier reply or stop wakes it */
            uint64_t t = due - FL_SPIN_NS;
            struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull), .tv_nsec = (long)(t % 1000000000ull)};
            pthread_cond_timedwait(&s->send_cv, &s->mu, &ts);
            s->sender_wakeups++;
        } else if (due > now) { /* spin the last stretch without the lock */
            atomic_store(&s->next_deadline, due);
            pthread_mutex_unlock(&s->mu);
            while (fl_now() < atomic_load(&s->next_deadline) && !atomic_load(&s->stopping))
                ;
            pthread_mutex_lock(&s->mu);
        } else {
            flush(s, c);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}
