/* The bounded resident set: reservations, the policy's victims, write-back
 * before drop (the order is explained in core/resident.h). */
#include "core/resident.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { F_DIRTY = 1, F_EVICTED = 2, F_CLOSED = 4 };

struct fl_resident {
    struct fl_region *r;
    struct fl_chunks *chunks;
    struct fl_resident_hooks h;
    struct fl_evict pol;
    uint64_t limit; /* chunks */
    atomic_uint_fast64_t count, max_count; /* reserved: resident or being fetched */
    atomic_flag lock; /* the policy; held only around its calls, never across a fault */
    _Atomic uint8_t *flags; /* per chunk: F_* */
    atomic_uint_fast64_t evictions, refetches, writebacks, reref;
    struct fl_conn *own; /* write-backs for callers without a connection (prefetch, flush) */
    pthread_mutex_t own_mu;
};

static void lock(struct fl_resident *rs)
{
    while (atomic_flag_test_and_set_explicit(&rs->lock, memory_order_acquire))
        sched_yield();
}

static void unlock(struct fl_resident *rs)
{
    atomic_flag_clear_explicit(&rs->lock, memory_order_release);
}

int fl_resident_create(struct fl_region *r, struct fl_chunks *chunks, const struct fl_resident_hooks *h, uint64_t min_chunks,
                       struct fl_resident **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!r->cfg.resident_limit)
        return 0;
    const uint64_t chunk = r->cfg.chunk_bytes, limit = r->cfg.resident_limit / chunk;
    if (r->cfg.resident_limit % chunk) {
        fl_errf(err, errlen, "resident_limit %llu bytes is not a multiple of the chunk (%llu bytes)",
                (unsigned long long)r->cfg.resident_limit, (unsigned long long)chunk);
        return -1;
    }
    if (limit < min_chunks) {
        fl_errf(err, errlen,
                "resident_limit %llu bytes holds %llu chunks, fewer than the %llu that may be in flight at once (faulting threads and "
                "prefetch depth x request): raise it to at least %llu bytes",
                (unsigned long long)r->cfg.resident_limit, (unsigned long long)limit, (unsigned long long)min_chunks,
                (unsigned long long)(min_chunks * chunk));
        return -1;
    }
    const struct fl_evict_ops *ops = fl_evict_find(r->cfg.evict);
    if (!ops) {
        fl_errf(err, errlen, "unknown evict policy '%s' (known: fifo, clock)", r->cfg.evict);
        return -1;
    }
    struct fl_resident *rs = calloc(1, sizeof *rs);
    if (!rs) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    rs->r = r;
    rs->chunks = chunks;
    rs->h = *h;
    rs->limit = limit;
    atomic_flag_clear(&rs->lock);
    pthread_mutex_init(&rs->own_mu, NULL);
    rs->pol.ops = ops;
    void *f = mmap(NULL, r->nchunks, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    rs->flags = f == MAP_FAILED ? NULL : f;
    if (!rs->flags || ops->init(&rs->pol, limit, r->nchunks)) {
        fl_errf(err, errlen, "out of memory for the resident set");
        fl_resident_destroy(rs);
        return -1;
    }
    if (r->source->ops->connect(r->source, &rs->own, err, errlen)) {
        fl_resident_destroy(rs);
        return -1;
    }
    *out = rs;
    return 0;
}

void fl_resident_destroy(struct fl_resident *rs)
{
    if (!rs)
        return;
    if (rs->own)
        rs->r->source->ops->disconnect(rs->own);
    if (rs->pol.ops)
        rs->pol.ops->destroy(&rs->pol);
    if (rs->flags)
        munmap((void *)rs->flags, rs->r->nchunks);
    pthread_mutex_destroy(&rs->own_mu);
    free(rs);
}

static void set_state(struct fl_resident *rs, uint64_t idx, uint8_t s)
{
    atomic_store(&rs->chunks->state[idx], s);
    fl_chunks_wake(rs->chunks);
}

/* The policy offers a candidate: only an installed chunk can be taken. */
static enum fl_evict_verdict offer(void *arg, uint64_t idx)
{
    struct fl_resident *rs = arg;
    return fl_chunk_move(rs->chunks, idx, FL_CHUNK_PRESENT, FL_CHUNK_BUSY) ? FL_EVICT_TAKE : FL_EVICT_SKIP;
}

static void second_chance(void *arg, uint64_t idx)
{
    struct fl_resident *rs = arg;
    if (!rs->h.reprotect || !fl_chunk_move(rs->chunks, idx, FL_CHUNK_PRESENT, FL_CHUNK_BUSY))
        return;
    rs->h.reprotect(rs->h.arg, idx);
    atomic_fetch_or(&rs->flags[idx], F_CLOSED);
    set_state(rs, idx, FL_CHUNK_PRESENT);
}

static int write_back(struct fl_resident *rs, uint64_t idx, struct fl_conn *conn, char *cause, size_t len)
{
    const uint64_t chunk = rs->r->cfg.chunk_bytes;
    const uint8_t *src = rs->h.bytes(rs->h.arg, idx);
    int rc;
    if (conn) {
        rc = rs->r->source->ops->write(conn, idx * chunk, src, chunk, cause, len);
    } else {
        pthread_mutex_lock(&rs->own_mu);
        rc = rs->r->source->ops->write(rs->own, idx * chunk, src, chunk, cause, len);
        pthread_mutex_unlock(&rs->own_mu);
    }
    if (!rc)
        atomic_fetch_add(&rs->writebacks, 1);
    return rc;
}

/* Victim idx is BUSY and out of the policy: protect, write back if dirty, drop. */
static int evict(struct fl_resident *rs, uint64_t idx, struct fl_conn *conn, char *cause, size_t len)
{
    struct fl_text t;
    if (rs->h.protect(rs->h.arg, idx)) {
        fl_text_init(&t, cause, len);
        fl_text_str(&t, "resident limit: cannot protect a chunk before evicting it (errno ");
        fl_text_u64(&t, (uint64_t)errno);
        fl_text_str(&t, ")");
        return -1;
    }
    if ((atomic_load(&rs->flags[idx]) & F_DIRTY) && write_back(rs, idx, conn, cause, len)) {
        char why[FL_ERR_LEN];
        fl_text_init(&t, why, sizeof why);
        fl_text_str(&t, cause);
        fl_text_init(&t, cause, len);
        fl_text_str(&t, "resident limit: write-back before eviction failed: ");
        fl_text_str(&t, why);
        return -1; /* the run fails; the chunk stays BUSY, its bytes in place */
    }
    if (rs->h.drop(rs->h.arg, idx)) {
        fl_text_init(&t, cause, len);
        fl_text_str(&t, "resident limit: cannot drop an evicted chunk (errno ");
        fl_text_u64(&t, (uint64_t)errno);
        fl_text_str(&t, ")");
        return -1;
    }
    atomic_store(&rs->flags[idx], F_EVICTED);
    atomic_fetch_add(&rs->evictions, 1);
    atomic_fetch_sub(&rs->count, 1);
    set_state(rs, idx, FL_CHUNK_ABSENT);
    return 0;
}

int fl_resident_reserve(struct fl_resident *rs, struct fl_conn *conn, bool wait, char *cause, size_t len)
{
    uint64_t deadline = 0;
    for (;;) {
        lock(rs);
        uint64_t n = atomic_load(&rs->count);
        if (n < rs->limit) {
            atomic_store(&rs->count, n + 1);
            if (n + 1 > atomic_load(&rs->max_count))
                atomic_store(&rs->max_count, n + 1);
            unlock(rs);
            return 0;
        }
        uint64_t victim;
        bool took = rs->pol.ops->pick(&rs->pol, offer, second_chance, rs, &victim);
        unlock(rs);
        if (took) {
            if (evict(rs, victim, conn, cause, len))
                return -1;
            continue;
        }
        if (!wait)
            return 1;
        struct fl_text t;
        if (atomic_load(&rs->r->failed)) {
            fl_text_init(&t, cause, len);
            fl_text_str(&t, "run already failed");
            return -1;
        }
        uint64_t now = fl_now();
        if (!deadline)
            deadline = now + (uint64_t)rs->r->cfg.fetch_timeout_ms * 1000000ull;
        if (now > deadline) {
            fl_text_init(&t, cause, len);
            fl_text_str(&t, "resident limit: no chunk could be evicted for ");
            fl_text_u64(&t, (uint64_t)rs->r->cfg.fetch_timeout_ms);
            fl_text_str(&t, " ms (every resident chunk in flight or held back): raise resident_limit");
            return -1;
        }
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50000};
        nanosleep(&ts, NULL); /* the chunks in flight become victims once installed */
    }
}

void fl_resident_unreserve(struct fl_resident *rs)
{
    atomic_fetch_sub(&rs->count, 1);
}

void fl_resident_insert(struct fl_resident *rs, uint64_t idx)
{
    lock(rs);
    rs->pol.ops->insert(&rs->pol, idx);
    unlock(rs);
    if (atomic_fetch_and(&rs->flags[idx], (uint8_t) ~(F_EVICTED | F_CLOSED)) & F_EVICTED)
        atomic_fetch_add(&rs->refetches, 1);
}

int fl_resident_mark_dirty(struct fl_resident *rs, uint64_t idx, int (*allow)(void *arg, uint64_t idx), void *arg)
{
    if (!fl_chunk_move(rs->chunks, idx, FL_CHUNK_PRESENT, FL_CHUNK_BUSY))
        return 0;
    atomic_fetch_or(&rs->flags[idx], F_DIRTY);
    atomic_fetch_and(&rs->flags[idx], (uint8_t)~F_CLOSED);
    rs->pol.ops->touch(&rs->pol, idx);
    int rc = allow(arg, idx);
    set_state(rs, idx, FL_CHUNK_PRESENT);
    return rc ? -1 : 1;
}

int fl_resident_reopen(struct fl_resident *rs, uint64_t idx, int (*open)(void *arg, uint64_t idx, bool writable), void *arg)
{
    if (!(atomic_load(&rs->flags[idx]) & F_CLOSED) || !fl_chunk_move(rs->chunks, idx, FL_CHUNK_PRESENT, FL_CHUNK_BUSY))
        return 0;
    uint8_t f = atomic_fetch_and(&rs->flags[idx], (uint8_t)~F_CLOSED);
    atomic_fetch_add(&rs->reref, 1);
    rs->pol.ops->touch(&rs->pol, idx);
    int rc = open(arg, idx, f & F_DIRTY);
    set_state(rs, idx, FL_CHUNK_PRESENT);
    return rc ? -1 : 1;
}

int fl_resident_admit(struct fl_resident *rs, uint64_t idx, struct fl_conn *conn, char *cause, size_t len)
{
    if (fl_resident_reserve(rs, conn, true, cause, len))
        return -1;
    fl_resident_insert(rs, idx);
    return 0;
}

uint64_t fl_resident_min_chunks(const struct fl_region *r)
{
    uint64_t per_request = (1u << 20) / r->cfg.chunk_bytes;
    return 2 * FL_MAX_HANDLERS + (strcmp(r->cfg.prefetch, "none") ? (uint64_t)r->cfg.depth * (per_request ? per_request : 1) : 0);
}

bool fl_resident_closed(struct fl_resident *rs, uint64_t idx)
{
    return atomic_load(&rs->flags[idx]) & F_CLOSED;
}

bool fl_resident_dirty(struct fl_resident *rs, uint64_t idx)
{
    return atomic_load(&rs->flags[idx]) & F_DIRTY;
}

void fl_resident_wait(struct fl_resident *rs, uint64_t idx)
{
    int saved = errno;
    struct fl_chunks *c = rs->chunks;
    atomic_fetch_add(&c->waiters, 1);
    for (;;) {
        unsigned seen = atomic_load(&c->seq);
        if (atomic_load(&c->state[idx]) != FL_CHUNK_BUSY || atomic_load(&rs->r->failed))
            break;
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        syscall(SYS_futex, &c->seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
    }
    atomic_fetch_sub(&c->waiters, 1);
    errno = saved;
}

int fl_resident_flush(struct fl_resident *rs, char *cause, size_t len)
{
    for (uint64_t i = 0; i < rs->r->nchunks; i++) {
        /* A chunk still BUSY (a handler finishing its dirty mark after the
         * writer went on) is waited for, never skipped: a dirty chunk is resident. */
        bool mine = false;
        while ((atomic_load(&rs->flags[i]) & F_DIRTY) && !atomic_load(&rs->r->failed)) {
            if ((mine = fl_chunk_move(rs->chunks, i, FL_CHUNK_PRESENT, FL_CHUNK_BUSY)) || fl_chunk_get(rs->chunks, i) != FL_CHUNK_BUSY)
                break;
            fl_resident_wait(rs, i);
        }
        if (!mine)
            continue;
        int rc = rs->h.protect(rs->h.arg, i);
        if (rc)
            snprintf(cause, len, "cannot protect chunk %llu before writing it back (errno %d)", (unsigned long long)i, errno);
        else
            rc = write_back(rs, i, NULL, cause, len);
        if (!rc) /* clean again, and closed: the next access reopens it (sigsegv), the next write faults */
            atomic_store(&rs->flags[i], F_CLOSED);
        set_state(rs, i, FL_CHUNK_PRESENT);
        if (rc)
            return -1;
    }
    return 0;
}

void fl_resident_counts(struct fl_resident *rs, struct fl_resident_counts *out)
{
    memset(out, 0, sizeof *out);
    if (!rs)
        return;
    const uint64_t chunk = rs->r->cfg.chunk_bytes;
    out->limit_bytes = rs->limit * chunk;
    out->evictions = atomic_load(&rs->evictions);
    out->refetches = atomic_load(&rs->refetches);
    out->writebacks = atomic_load(&rs->writebacks);
    out->max_resident_bytes = atomic_load(&rs->max_count) * chunk;
    out->reref_faults = atomic_load(&rs->reref);
}
