/* Per-chunk states and the futex that lets a fault wait for another thread's install. */
#include "core/chunks.h"

#include <errno.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

int fl_chunks_init(struct fl_chunks *c, uint64_t n)
{
    /* mmap: zero-filled (ABSENT) without touching it, and large regions have many chunks. */
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        c->state = NULL;
        return -1;
    }
    c->state = p;
    c->n = n;
    atomic_init(&c->seq, 0);
    atomic_init(&c->waiters, 0);
    return 0;
}

void fl_chunks_free(struct fl_chunks *c)
{
    if (c->state)
        munmap((void *)c->state, c->n ? c->n : 1);
    c->state = NULL;
}

void fl_chunks_wake(struct fl_chunks *c)
{
    int saved = errno;
    atomic_fetch_add(&c->seq, 1);
    if (atomic_load(&c->waiters))
        syscall(SYS_futex, &c->seq, FUTEX_WAKE_PRIVATE, 1 << 30, NULL, NULL, 0);
    errno = saved;
}

void fl_chunks_set(struct fl_chunks *c, uint64_t i, uint64_t n, uint8_t s)
{
    for (uint64_t k = 0; k < n; k++)
        atomic_store(&c->state[i + k], s);
    if (s == FL_CHUNK_PRESENT)
        fl_chunks_wake(c);
}

bool fl_chunk_wait(struct fl_chunks *c, uint64_t i, atomic_int *failed)
{
    int saved = errno;
    bool ok = true;
    atomic_fetch_add(&c->waiters, 1);
    for (;;) {
        unsigned seen = atomic_load(&c->seq);
        if (atomic_load(&c->state[i]) == FL_CHUNK_PRESENT)
            break;
        if (atomic_load(failed)) {
            ok = false;
            break;
        }
        /* A timeout bounds the wait should a failure be flagged without a wake. */
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 50 * 1000 * 1000};
        syscall(SYS_futex, &c->seq, FUTEX_WAIT_PRIVATE, seen, &ts, NULL, 0);
    }
    atomic_fetch_sub(&c->waiters, 1);
    errno = saved;
    return ok;
}

uint64_t fl_chunks_count(struct fl_chunks *c, uint8_t s)
{
    uint64_t k = 0;
    for (uint64_t i = 0; i < c->n; i++)
        k += atomic_load(&c->state[i]) == s;
    return k;
}
