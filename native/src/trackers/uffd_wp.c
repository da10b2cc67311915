/* Tracker `uffd-wp`: userfaultfd write-protect mode with a handler thread.
 * A write to a protected page blocks the writer and queues a message; the
 * handler marks the chunk dirty, then un-protects the whole chunk (which wakes
 * the writer). Marking first means a writer that goes on to collect always
 * finds its chunk; a lock around (mark, un-protect) and around collect's
 * (drain, re-protect) keeps collect from re-protecting between the two, which
 * would leave a chunk writable with its bit already drained: a lost write. */
#include "trackers/tracker.h"

#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

struct wp_state {
    int uffd, stopfd;
    pthread_t thread;
    bool started;
    struct fl_dirty dirty;
    pthread_mutex_t lock; /* (mark, un-protect) vs (drain, re-protect) */
    atomic_int failed;
    char fail_msg[FL_ERR_LEN];
};

static void wp_fail(struct fl_tracker *t, struct wp_state *s, const char *msg)
{
    int expect = 0;
    if (atomic_compare_exchange_strong(&s->failed, &expect, 1)) {
        fl_errf(s->fail_msg, sizeof s->fail_msg, "uffd-wp handler: %s", msg);
        /* Unregistering wakes every blocked writer: it must not hang. */
        struct uffdio_range r = {.start = (uint64_t)(uintptr_t)t->base, .len = t->len};
        ioctl(s->uffd, UFFDIO_UNREGISTER, &r);
    }
}

static void *wp_handler(void *arg)
{
    struct fl_tracker *t = arg;
    struct wp_state *s = t->state;
    struct uffd_msg msgs[64];
    char err[FL_ERR_LEN];
    fl_pin_cpu(t->handler_cpu);
    for (;;) {
        struct pollfd p[2] = {{.fd = s->uffd, .events = POLLIN}, {.fd = s->stopfd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            wp_fail(t, s, "poll failed");
            return NULL;
        }
        if (p[1].revents)
            return NULL;
        ssize_t k = read(s->uffd, msgs, sizeof msgs);
        if (k < 0) {
            if (errno == EAGAIN || errno == EINTR)
                continue;
            wp_fail(t, s, "read from the userfaultfd failed");
            return NULL;
        }
        for (ssize_t i = 0; i < k / (ssize_t)sizeof *msgs; i++) {
            struct uffd_msg *m = &msgs[i];
            if (m->event != UFFD_EVENT_PAGEFAULT || !(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP)) {
                wp_fail(t, s, "unexpected message (not a write-protect fault)");
                return NULL;
            }
            uint64_t idx = (m->arg.pagefault.address - (uint64_t)(uintptr_t)t->base) / t->chunk;
            pthread_mutex_lock(&s->lock);
            fl_dirty_set(&s->dirty, idx);
            /* Count before un-protecting: that wakes the writer, which may
             * read the count as soon as it has written. */
            atomic_fetch_add(&t->faults, 1);
            int rc = fl_uffd_wp_range(s->uffd, t->base + idx * t->chunk, t->chunk, false, err, sizeof err);
            pthread_mutex_unlock(&s->lock);
            if (rc) {
                wp_fail(t, s, err);
                return NULL;
            }
        }
    }
}

static void wp_destroy(struct fl_tracker *t)
{
    struct wp_state *s = t->state;
    if (!s)
        return;
    if (s->started) {
        uint64_t one = 1;
        if (write(s->stopfd, &one, sizeof one) != sizeof one) { /* the join below would hang: nothing better to do */
        }
        pthread_join(s->thread, NULL);
    }
    if (s->uffd >= 0)
        close(s->uffd); /* closing also un-protects and unregisters the range */
    if (s->stopfd >= 0)
        close(s->stopfd);
    fl_dirty_free(&s->dirty);
    pthread_mutex_destroy(&s->lock);
    free(s);
    t->state = NULL;
}

static int wp_create(struct fl_tracker *t, char *err, size_t errlen)
{
    struct wp_state *s = calloc(1, sizeof *s);
    if (!s) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    s->uffd = s->stopfd = -1;
    pthread_mutex_init(&s->lock, NULL);
    t->state = s;
    if (fl_dirty_init(&s->dirty, t->nchunks)) {
        fl_errf(err, errlen, "out of memory for the dirty bitmap");
        goto fail;
    }
    uint64_t need = t->shared ? UFFD_FEATURE_WP_HUGETLBFS_SHMEM : 0;
    s->uffd = fl_uffd_wp_arm(t, need | UFFD_FEATURE_WP_UNPOPULATED, need, "uffd-wp on shared memory", err, errlen);
    if (s->uffd < 0)
        goto fail;
    if ((s->stopfd = eventfd(0, EFD_CLOEXEC)) < 0) {
        fl_errf(err, errlen, "eventfd: %s", strerror(errno));
        goto fail;
    }
    int e = pthread_create(&s->thread, NULL, wp_handler, t);
    if (e) {
        fl_errf(err, errlen, "cannot start the uffd-wp handler thread: %s", strerror(e));
        goto fail;
    }
    s->started = true;
    return 0;
fail:
    wp_destroy(t);
    return -1;
}

static int wp_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    struct wp_state *s = t->state;
    int rc = 0;
    pthread_mutex_lock(&s->lock);
    fl_dirty_drain(&s->dirty, idx, n);
    /* Re-protect runs of consecutive chunks with one ioctl each. */
    for (uint64_t i = 0; i < *n && !rc;) {
        uint64_t j = i + 1;
        while (j < *n && idx[j] == idx[j - 1] + 1)
            j++;
        rc = fl_uffd_wp_range(s->uffd, t->base + idx[i] * t->chunk, (j - i) * t->chunk, true, err, errlen);
        i = j;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc)
        return -1;
    if (atomic_load(&s->failed)) {
        fl_errf(err, errlen, "%s", s->fail_msg);
        return -1;
    }
    return 0;
}

const struct fl_tracker_ops fl_tracker_uffd_wp = {
    .name = "uffd-wp",
    .create = wp_create,
    .collect = wp_collect,
    .destroy = wp_destroy,
};
