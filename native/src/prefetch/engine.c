/* The prefetch engine: one thread with its own source connection pulls what
 * the policy asks for, keeping up to `depth` READs in flight (pipelined on
 * one connection; the source hands the answers out in the order sent,
 * whatever order the server sent them in), and hands each answer to the
 * strategy to install. Faults reach it through a lock-free ring plus an
 * eventfd, both usable from a signal handler. Where the install copies every
 * byte (uffd's UFFDIO_COPY, whose cost per MiB is of the order of receiving
 * it: install_ns_p50 in the rows), an installer thread does it, so receiving
 * and installing overlap, when they can: with cpus=same or split both threads
 * would be pinned to one CPU, where a second thread only adds two context
 * switches per answer, so the engine installs itself.
 *
 * One server connection's throughput stops growing with the pipeline's depth
 * well before several connections' does, so `depth` is spread over pf_conns
 * connections (default one per 16 requests, at most 8). */
#include "prefetch/prefetch.h"
#include "core/resident.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define HINTS           1024 /* a full ring drops hints: they are advice, never correctness */
#define DEFAULT_REQUEST (1u << 20)

struct hint_cell {
    atomic_uint_fast64_t seq;
    uint64_t v;
};

struct slot {
    uint64_t idx, n, trigger;
    uint8_t *dst;
    int buf; /* the pool buffer dst points into, or -1 (the target's landing place) */
};

/* Receive buffers, when the target has no landing place: shared by all
 * connections and handed out last-freed first, so a shallow pipeline keeps
 * reusing the few buffers that are already faulted in and warm in the cache
 * (cycling through every slot's buffer would touch depth x slot_bytes of fresh
 * memory, page fault by page fault, inside the timed window). Slots in flight
 * plus answers waiting for the installer never exceed the pool's size. */
struct bufpool {
    uint8_t *mem;
    int *free, nfree, n;
    pthread_mutex_t mu; /* the installer gives buffers back */
};

/* One connection and the requests in flight on it, oldest first. `installing`
 * counts its answers the installer has not taken in yet: their pool buffers
 * are not free until it has, so they count against the connection's slots. */
struct queue {
    struct fl_conn *conn;
    int fd;
    struct slot *slots; /* ring of per_conn */
    int head, count;
    atomic_int installing;
};

/* Received answers for the installer thread, oldest first (one per slot, so
 * the ring never overflows). */
struct job {
    int q;
    struct slot s;
};

struct installer {
    pthread_t thread;
    bool started;
    bool used; /* it was started for this engine (started is cleared at stop) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct job *jobs;
    int cap, head, count;
    bool stop;
};

#define MAX_CONNS 8

struct fl_pf_engine {
    struct fl_region *r;
    struct fl_chunks *chunks;
    struct fl_pf_target t;
    struct fl_pf_policy p;
    struct queue q[MAX_CONNS];
    int nconns, per_conn, depth, count; /* count: requests in flight over all connections */
    uint64_t slot_bytes;
    struct bufpool pool;

    struct hint_cell hints[HINTS];
    atomic_uint_fast64_t hint_tail;
    uint64_t hint_head;
    int hintfd, stopfd;
    atomic_bool stop;
    bool active; /* a first fault happened: the application runs */
    uint64_t t_active;

    pthread_t thread;
    bool started;
    struct installer inst; /* started when the target's install copies */
    atomic_uint_fast64_t prefetched, bytes, requests, filled_ns;
};

static const struct fl_pf_policy_ops *const policies[] = {&fl_pf_none, &fl_pf_ahead, &fl_pf_adaptive, &fl_pf_background, &fl_pf_criu};

int fl_pf_policy_init(struct fl_pf_policy *p, const char *spec, uint64_t nchunks, uint64_t chunk_bytes, char *err, size_t errlen)
{
    memset(p, 0, sizeof *p);
    char name[32];
    const char *colon = strchr(spec, ':');
    size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
    if (len >= sizeof name)
        len = sizeof name - 1;
    memcpy(name, spec, len);
    name[len] = 0;
    for (size_t i = 0; i < sizeof policies / sizeof *policies; i++) {
        if (strcmp(policies[i]->name, name))
            continue;
        p->ops = policies[i];
        p->nchunks = nchunks;
        p->chunk_bytes = chunk_bytes;
        p->trigger = FL_PF_NONE;
        p->max_run = DEFAULT_REQUEST / chunk_bytes ? DEFAULT_REQUEST / chunk_bytes : 1;
        return p->ops->init(p, colon ? colon + 1 : NULL, err, errlen);
    }
    fl_errf(err, errlen, "unknown prefetch policy '%s' (known: none, ahead:N, adaptive[:N], background, criu)", spec);
    return -1;
}

/* ---- hints: multi-producer ring (Vyukov), one consumer ------------------- */

/* Wake the engine's poll; async-signal-safe (a fault handler calls it). */
static void wake_engine(struct fl_pf_engine *e)
{
    int saved = errno;
    uint64_t one = 1;
    if (write(e->hintfd, &one, sizeof one) < 0) { /* the counter is full: the engine is awake anyway */
    }
    errno = saved;
}

static void hint(struct fl_pf_engine *e, uint64_t v)
{
    uint64_t pos = atomic_load(&e->hint_tail);
    for (;;) {
        struct hint_cell *c = &e->hints[pos % HINTS];
        uint64_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (atomic_compare_exchange_weak(&e->hint_tail, &pos, pos + 1)) {
                c->v = v;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                break;
            }
        } else if (diff < 0) {
            return; /* full */
        } else {
            pos = atomic_load(&e->hint_tail);
        }
    }
    wake_engine(e);
}

void fl_pf_hint_fault(struct fl_pf_engine *e, uint64_t idx)
{
    hint(e, idx << 1);
}
void fl_pf_hint_trigger(struct fl_pf_engine *e, uint64_t idx)
{
    hint(e, idx << 1 | 1);
}

static void drain_hints(struct fl_pf_engine *e)
{
    uint64_t junk;
    if (read(e->hintfd, &junk, sizeof junk) < 0) { /* EAGAIN: nothing new */
    }
    for (;;) {
        struct hint_cell *c = &e->hints[e->hint_head % HINTS];
        if (atomic_load_explicit(&c->seq, memory_order_acquire) != e->hint_head + 1)
            break;
        uint64_t v = c->v;
        atomic_store_explicit(&c->seq, e->hint_head + HINTS, memory_order_release);
        e->hint_head++;
        if (!e->active) {
            e->active = true;
            e->t_active = fl_now();
        }
        if (v & 1)
            e->p.ops->on_trigger(&e->p, v >> 1);
        else
            e->p.ops->on_fault(&e->p, v >> 1);
    }
}

/* ---- pulling --------------------------------------------------------------- */

static void engine_fail(struct fl_pf_engine *e, uint64_t idx, const char *cause)
{
    char msg[FL_ERR_LEN];
    fl_sigsafe_msg(msg, sizeof msg, "prefetch: fetch failed at offset ", idx * e->p.chunk_bytes, cause);
    fl_region_fail(e->r, msg);
}

static int buf_take(struct fl_pf_engine *e)
{
    pthread_mutex_lock(&e->pool.mu);
    int b = e->pool.nfree ? e->pool.free[--e->pool.nfree] : -1;
    pthread_mutex_unlock(&e->pool.mu);
    return b;
}

static void buf_give(struct fl_pf_engine *e, int b)
{
    if (b < 0)
        return;
    pthread_mutex_lock(&e->pool.mu);
    e->pool.free[e->pool.nfree++] = b;
    pthread_mutex_unlock(&e->pool.mu);
}

/* Give back everything in flight (after a failure): waiters must not hang. */
static void abandon_all(struct fl_pf_engine *e)
{
    for (int c = 0; c < e->nconns; c++) {
        struct queue *q = &e->q[c];
        for (; q->count; q->count--, q->head = (q->head + 1) % e->per_conn) {
            if (e->t.abandon)
                e->t.abandon(e->t.arg, q->slots[q->head].idx, q->slots[q->head].n);
            buf_give(e, q->slots[q->head].buf);
        }
    }
    e->count = 0;
    fl_chunks_wake(e->chunks); /* waiters see the failure */
}

/* Claim chunk i for a request: 1 taken, 0 there already or someone else's,
 * -1 no room under resident_limit now (the engine evicts what it can, then
 * stops until a fault or an answer frees room: it never installs past it). */
static int take(struct fl_pf_engine *e, uint64_t i)
{
    struct fl_resident *rs = e->r->resident;
    char cause[FL_ERR_LEN];
    if (rs) {
        int rc = fl_resident_reserve(rs, NULL, false, cause, sizeof cause);
        if (rc < 0)
            engine_fail(e, i, cause);
        if (rc)
            return -1;
    }
    if (!fl_chunk_take(e->chunks, i, FL_CHUNK_ABSENT)) {
        if (rs)
            fl_resident_unreserve(rs);
        return 0;
    }
    if (rs)
        fl_resident_insert(rs, i);
    return 1;
}

static void issue(struct fl_pf_engine *e)
{
    const uint64_t chunk = e->p.chunk_bytes;
    while (e->count < e->depth && !atomic_load(&e->r->failed)) {
        struct fl_pf_policy *p = &e->p;
        if (p->next >= p->end) {
            if (!p->ops->refill(p))
                return;
            continue;
        }
        struct queue *q = NULL; /* the least busy connection with a free slot */
        for (int c = 0; c < e->nconns; c++)
            if (e->q[c].count + atomic_load_explicit(&e->q[c].installing, memory_order_acquire) < e->per_conn &&
                (!q || e->q[c].count < q->count))
                q = &e->q[c];
        if (!q)
            return; /* every slot waits for the installer, which wakes us */
        uint64_t i = p->next;
        int got = take(e, i);
        if (got < 0)
            return;
        if (!got) {
            p->next++; /* there already, or someone else fetches it */
            continue;
        }
        uint64_t n = 1;
        p->next++;
        while (n < p->max_run && p->next < p->end && take(e, p->next) > 0) {
            n++;
            p->next++;
        }
        int k = (q->head + q->count) % e->per_conn;
        struct slot *s = &q->slots[k];
        s->idx = i;
        s->n = n;
        s->trigger = p->trigger >= i && p->trigger < i + n ? p->trigger : FL_PF_NONE;
        if (s->trigger != FL_PF_NONE)
            p->trigger = FL_PF_NONE;
        s->buf = e->t.landing ? -1 : buf_take(e);
        if (!e->t.landing && s->buf < 0) { /* cannot happen (see struct bufpool); never write outside the pool */
            if (e->t.abandon)
                e->t.abandon(e->t.arg, i, n);
            engine_fail(e, i, "no free prefetch buffer");
            return;
        }
        s->dst = e->t.landing ? e->t.landing(e->t.arg, i, n) : e->pool.mem + (uint64_t)s->buf * e->slot_bytes;
        char cause[FL_ERR_LEN];
        q->count++;
        e->count++;
        if (e->r->source->ops->send_read(q->conn, i * chunk, s->dst, n * chunk, cause, sizeof cause)) {
            engine_fail(e, i, cause);
            return;
        }
        atomic_fetch_add(&e->requests, 1);
    }
}

/* Install [i, i+n) of slot s (bytes at src). */
static int install(struct fl_pf_engine *e, uint64_t i, uint64_t n, const uint8_t *src)
{
    if (!n)
        return 0;
    char cause[FL_ERR_LEN];
    if (e->t.install(e->t.arg, i, n, src, cause, sizeof cause)) {
        engine_fail(e, i, cause);
        if (e->t.abandon)
            e->t.abandon(e->t.arg, i, n);
        return -1;
    }
    fl_chunks_set(e->chunks, i, n, FL_CHUNK_PRESENT);
    atomic_fetch_add(&e->prefetched, n);
    return 0;
}

/* Make a received answer visible: install it, holding back its trigger chunk. */
static void deliver(struct fl_pf_engine *e, const struct slot *slot)
{
    const uint64_t chunk = e->p.chunk_bytes;
    struct slot s = *slot;
    uint64_t t = s.trigger;
    if (t != FL_PF_NONE && e->t.stage && e->t.stage(e->t.arg, t, s.dst + (t - s.idx) * chunk)) {
        /* Held back only if no fault waits for it yet (WANTED): otherwise the
         * trigger was reached already and the chunk goes in like the others. */
        if (fl_chunk_move(e->chunks, t, FL_CHUNK_CLAIMED, FL_CHUNK_STAGED)) {
            atomic_fetch_add(&e->prefetched, 1);
            if (!install(e, s.idx, t - s.idx, s.dst))
                install(e, t + 1, s.idx + s.n - t - 1, s.dst + (t + 1 - s.idx) * chunk);
            return;
        }
        if (e->t.unstage)
            e->t.unstage(e->t.arg, t);
        fl_pf_hint_trigger(e, t); /* the engine tells the policy (it may be the installer here) */
        /* Staging may have installed part of chunk t already (uffd's UFFDIO_COPY
         * holds back only its first page): an install running into it stops
         * there, so t goes in on its own, after the chunks around it. */
        if (!install(e, s.idx, t - s.idx, s.dst) && !install(e, t + 1, s.idx + s.n - t - 1, s.dst + (t + 1 - s.idx) * chunk))
            install(e, t, 1, s.dst + (t - s.idx) * chunk);
        return;
    }
    install(e, s.idx, s.n, s.dst);
}

static void receive_one(struct fl_pf_engine *e, struct queue *q)
{
    const uint64_t chunk = e->p.chunk_bytes;
    struct slot s = q->slots[q->head];
    char cause[FL_ERR_LEN];
    if (e->r->source->ops->recv_read(q->conn, s.idx * chunk, s.dst, s.n * chunk, cause, sizeof cause)) {
        engine_fail(e, s.idx, cause);
        return;
    }
    q->head = (q->head + 1) % e->per_conn;
    q->count--;
    e->count--;
    atomic_fetch_add(&e->bytes, s.n * chunk);
    struct installer *in = &e->inst;
    if (!in->started) {
        deliver(e, &s);
        buf_give(e, s.buf);
        return;
    }
    atomic_fetch_add_explicit(&q->installing, 1, memory_order_relaxed);
    pthread_mutex_lock(&in->mu);
    in->jobs[(in->head + in->count++) % in->cap] = (struct job){.q = (int)(q - e->q), .s = s};
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
}

/* The installer thread: where installing copies the bytes (uffd's
 * UFFDIO_COPY), the engine receives the next answers meanwhile. */
static void *installer_main(void *arg)
{
    struct fl_pf_engine *e = arg;
    struct installer *in = &e->inst;
    fl_pin_cpu(fl_cpu_for(e->r->cfg.cpus, true));
    for (;;) {
        pthread_mutex_lock(&in->mu);
        while (!in->count && !in->stop)
            pthread_cond_wait(&in->cv, &in->mu);
        if (in->stop) { /* dropped, as answers in flight are */
            pthread_mutex_unlock(&in->mu);
            return NULL;
        }
        struct job j = in->jobs[in->head];
        in->head = (in->head + 1) % in->cap;
        in->count--;
        pthread_mutex_unlock(&in->mu);
        if (!atomic_load(&e->r->failed))
            deliver(e, &j.s);
        else if (e->t.abandon) {
            e->t.abandon(e->t.arg, j.s.idx, j.s.n); /* waiters must not hang */
            fl_chunks_wake(e->chunks);
        }
        buf_give(e, j.s.buf); /* before the slot counts as free: issue() then finds a buffer */
        atomic_fetch_sub_explicit(&e->q[j.q].installing, 1, memory_order_release);
        wake_engine(e); /* it may wait for this slot */
    }
}

/* For region-filling policies: every chunk there (the fault path may still be installing some). */
static void check_filled(struct fl_pf_engine *e)
{
    if (!e->p.ops->fills_region || atomic_load(&e->filled_ns) || e->p.end < e->p.nchunks || e->count)
        return;
    if (fl_chunks_count(e->chunks, FL_CHUNK_PRESENT) == e->p.nchunks)
        atomic_store(&e->filled_ns, fl_now() - e->t_active);
}

static void *engine_main(void *arg)
{
    struct fl_pf_engine *e = arg;
    struct fl_region *r = e->r;
    fl_pin_cpu(fl_cpu_for(r->cfg.cpus, true));
    while (!atomic_load(&e->stop)) {
        drain_hints(e);
        if (atomic_load(&r->failed)) {
            abandon_all(e);
            break;
        }
        if (e->active)
            issue(e);
        if (atomic_load(&r->failed))
            continue;
        check_filled(e);
        struct pollfd pf[2 + MAX_CONNS] = {{.fd = e->hintfd, .events = POLLIN}, {.fd = e->stopfd, .events = POLLIN}};
        if (!e->count) {
            /* Idle: wait for a fault (a filling policy whose fault-path chunks are
             * not all in yet polls every ms). */
            int timeout = e->p.ops->fills_region && e->active && !atomic_load(&e->filled_ns) ? 1 : -1;
            if (poll(pf, 2, timeout) < 0 && errno != EINTR)
                break;
            continue;
        }
        if (e->q[0].fd < 0) { /* answers are immediate (local source) */
            receive_one(e, &e->q[0]);
            continue;
        }
        /* An answer read while the source waited for an earlier one (the
         * server may answer out of order) leaves nothing for poll to see. */
        bool took = false;
        for (int c = 0; c < e->nconns; c++)
            if (e->q[c].count && r->source->ops->ready && r->source->ops->ready(e->q[c].conn)) {
                receive_one(e, &e->q[c]);
                took = true;
            }
        if (took)
            continue;
        for (int c = 0; c < e->nconns; c++)
            pf[2 + c] = (struct pollfd){.fd = e->q[c].count ? e->q[c].fd : -1, .events = POLLIN};
        int k = poll(pf, (nfds_t)(2 + e->nconns), r->cfg.fetch_timeout_ms);
        if (k < 0 && errno == EINTR)
            continue;
        if (k == 0) {
            char cause[64]; /* worded as the fault path's fetch says it */
            snprintf(cause, sizeof cause, "timeout after %d ms", r->cfg.fetch_timeout_ms);
            engine_fail(e, e->q[0].count ? e->q[0].slots[e->q[0].head].idx : 0, cause);
            continue;
        }
        for (int c = 0; c < e->nconns && k > 0; c++)
            if (pf[2 + c].revents & (POLLIN | POLLHUP | POLLERR))
                receive_one(e, &e->q[c]); /* one answer per connection, then hints again */
    }
    /* Wait for stop: the strategy joins us at quiesce/destroy. */
    while (!atomic_load(&e->stop)) {
        struct pollfd s = {.fd = e->stopfd, .events = POLLIN};
        if (poll(&s, 1, -1) < 0 && errno != EINTR)
            break;
    }
    return NULL;
}

int fl_pf_start(struct fl_region *r, struct fl_chunks *chunks, const struct fl_pf_target *t, struct fl_pf_engine **out, char *err,
                size_t errlen)
{
    *out = NULL;
    struct fl_pf_policy p;
    if (fl_pf_policy_init(&p, r->cfg.prefetch, r->nchunks, r->cfg.chunk_bytes, err, errlen))
        return -1;
    if (p.ops == &fl_pf_none)
        return 0;
    struct fl_pf_engine *e = calloc(1, sizeof *e);
    if (!e) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    e->r = r;
    e->chunks = chunks;
    e->t = *t;
    e->p = p;
    e->depth = p.max_depth && p.max_depth < r->cfg.depth ? p.max_depth : r->cfg.depth;
    e->hintfd = e->stopfd = -1;
    pthread_mutex_init(&e->pool.mu, NULL);
    for (uint64_t i = 0; i < HINTS; i++)
        atomic_init(&e->hints[i].seq, i);
    e->slot_bytes = p.max_run * r->cfg.chunk_bytes;
    if (r->source->ops->connect(r->source, &e->q[0].conn, err, errlen))
        goto fail;
    e->q[0].fd = r->source->ops->poll_fd(e->q[0].conn);
    e->nconns = r->cfg.pf_conns ? r->cfg.pf_conns : (e->depth + 15) / 16;
    if (e->nconns > MAX_CONNS)
        e->nconns = MAX_CONNS;
    if (e->nconns > e->depth || e->q[0].fd < 0)
        e->nconns = e->q[0].fd < 0 ? 1 : e->depth; /* in-process: nothing to overlap */
    e->per_conn = (e->depth + e->nconns - 1) / e->nconns;
    if (!t->landing) {
        struct bufpool *b = &e->pool;
        b->n = e->nconns * e->per_conn;
        void *m = mmap(NULL, (uint64_t)b->n * e->slot_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        b->mem = m == MAP_FAILED ? NULL : m;
        if (!b->mem || !(b->free = calloc((size_t)b->n, sizeof *b->free))) {
            fl_errf(err, errlen, "out of memory for %d prefetch buffers of %llu bytes", b->n, (unsigned long long)e->slot_bytes);
            goto fail;
        }
        for (int i = 0; i < b->n; i++)
            b->free[i] = b->n - 1 - i; /* buffer 0 on top */
        b->nfree = b->n;
    }
    for (int c = 0; c < e->nconns; c++) {
        struct queue *q = &e->q[c];
        if (!(q->slots = calloc((size_t)e->per_conn, sizeof *q->slots))) {
            fl_errf(err, errlen, "out of memory");
            goto fail;
        }
        if (c && r->source->ops->connect(r->source, &q->conn, err, errlen))
            goto fail;
        q->fd = r->source->ops->poll_fd(q->conn);
    }
    e->hintfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    e->stopfd = eventfd(0, EFD_CLOEXEC);
    if (e->hintfd < 0 || e->stopfd < 0) {
        fl_errf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int rc;
    if (t->install_copies && !t->landing && fl_cpu_for(r->cfg.cpus, true) < 0) {
        struct installer *in = &e->inst;
        in->cap = e->nconns * e->per_conn;
        if (!(in->jobs = calloc((size_t)in->cap, sizeof *in->jobs))) {
            fl_errf(err, errlen, "out of memory");
            goto fail;
        }
        pthread_mutex_init(&in->mu, NULL);
        pthread_cond_init(&in->cv, NULL);
        if ((rc = pthread_create(&in->thread, NULL, installer_main, e))) {
            fl_errf(err, errlen, "cannot start the prefetch installer thread: %s", strerror(rc));
            goto fail;
        }
        in->started = in->used = true;
    }
    rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc) {
        fl_errf(err, errlen, "cannot start the prefetch thread: %s", strerror(rc));
        goto fail;
    }
    e->started = true;
    *out = e;
    return 0;
fail:
    fl_pf_destroy(e);
    return -1;
}

bool fl_pf_fills_region(const struct fl_pf_engine *e)
{
    return e && e->p.ops->fills_region;
}

int fl_pf_wait_filled(struct fl_pf_engine *e, int timeout_ms)
{
    if (!e || !e->p.ops->fills_region)
        return -1;
    uint64_t deadline = fl_now() + (uint64_t)timeout_ms * 1000000ull;
    while (!atomic_load(&e->filled_ns) && !atomic_load(&e->r->failed) && fl_now() < deadline)
        usleep(200);
    return atomic_load(&e->filled_ns) ? 0 : -1;
}

static void stop_installer(struct fl_pf_engine *e)
{
    struct installer *in = &e->inst;
    if (!in->started)
        return;
    pthread_mutex_lock(&in->mu);
    in->stop = true;
    pthread_cond_signal(&in->cv);
    pthread_mutex_unlock(&in->mu);
    pthread_join(in->thread, NULL);
    in->started = false;
}

void fl_pf_stop(struct fl_pf_engine *e)
{
    if (!e)
        return;
    if (!e->started) {
        stop_installer(e); /* the engine thread failed to start after it */
        return;
    }
    atomic_store(&e->stop, true);
    uint64_t one = 1;
    if (write(e->stopfd, &one, sizeof one) < 0) { /* cannot fail: a fresh eventfd */
    }
    pthread_join(e->thread, NULL);
    e->started = false;
    stop_installer(e);
}

void fl_pf_counts(struct fl_pf_engine *e, struct fl_pf_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!e)
        return;
    out->prefetched = atomic_load(&e->prefetched);
    out->bytes = atomic_load(&e->bytes);
    out->requests = atomic_load(&e->requests);
    out->filled_ns = atomic_load(&e->filled_ns);
    out->conns = e->nconns;
    out->installer = e->inst.used;
}

uint64_t fl_pf_cpu_ns(const struct fl_pf_engine *e)
{
    if (!e)
        return 0;
    uint64_t ns = e->started ? fl_thread_cpu_ns_of(e->thread) : 0;
    return e->inst.started ? fl_cpu_add(ns, fl_thread_cpu_ns_of(e->inst.thread)) : ns;
}

void fl_pf_destroy(struct fl_pf_engine *e)
{
    if (!e)
        return;
    fl_pf_stop(e);
    for (int c = 0; c < MAX_CONNS; c++) {
        struct queue *q = &e->q[c];
        if (q->conn)
            e->r->source->ops->disconnect(q->conn);
        free(q->slots);
    }
    if (e->pool.mem)
        munmap(e->pool.mem, (uint64_t)e->pool.n * e->slot_bytes);
    free(e->pool.free);
    pthread_mutex_destroy(&e->pool.mu);
    if (e->inst.jobs) {
        pthread_mutex_destroy(&e->inst.mu);
        pthread_cond_destroy(&e->inst.cv);
        free(e->inst.jobs);
    }
    if (e->hintfd >= 0)
        close(e->hintfd);
    if (e->stopfd >= 0)
        close(e->stopfd);
    free(e);
}
