/* Dirty tracking: one interface, one file per tracker.
 *
 * A tracker watches a region the caller has mapped read-write and populated
 * (anonymous private, or a shared memfd view). create arms the whole region;
 * collect returns the chunks written since the previous collect (or create)
 * and re-arms them before returning, so the caller copies a chunk's contents
 * only after it is armed again: a write racing with the copy is caught by the
 * next collect, never lost. */
#ifndef FAULTLAB_TRACKER_H
#define FAULTLAB_TRACKER_H

#include "core/internal.h"

struct fl_tracker;
struct fl_tracker_ops {
    const char *name;
    int (*create)(struct fl_tracker *t, char *err, size_t errlen);
    /* Indices of dirty chunks, ascending, no duplicates, into idx (room for
     * nchunks); *n = how many. */
    int (*collect)(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen);
    void (*destroy)(struct fl_tracker *t);
};

struct fl_tracker {
    const struct fl_tracker_ops *ops;
    uint8_t *base;
    uint64_t len, chunk, nchunks, page;
    bool shared; /* base is a MAP_SHARED memfd view (else anonymous private) */
    int handler_cpu; /* where a handler thread runs (-1: unpinned) */
    atomic_ulong faults; /* write faults taken (uffd-wp, mprotect) */
    void *state;
};

/* name: uffd-wp, uffd-wp-async, mprotect, soft-dirty, none. NULL + err on failure. */
struct fl_tracker *fl_tracker_create(const char *name, void *base, uint64_t len, uint64_t chunk, bool shared, int handler_cpu, char *err,
                                     size_t errlen);
int fl_tracker_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen);
void fl_tracker_destroy(struct fl_tracker *t);
extern const char fl_tracker_names[]; /* "uffd-wp, uffd-wp-async, ..." for messages */

/* A dirty bitmap, one bit a chunk, set from a handler thread or a signal
 * handler (lock-free), drained by collect. */
struct fl_dirty {
    _Atomic uint64_t *w;
    uint64_t nwords;
};
int fl_dirty_init(struct fl_dirty *d, uint64_t nchunks);
void fl_dirty_free(struct fl_dirty *d);
static inline void fl_dirty_set(struct fl_dirty *d, uint64_t i)
{
    atomic_fetch_or_explicit(&d->w[i / 64], 1ull << (i % 64), memory_order_release);
}
/* Clear every bit, appending the indices that were set to idx. */
void fl_dirty_drain(struct fl_dirty *d, uint64_t *idx, uint64_t *n);

/* userfaultfd features the running kernel offers (0 if none can be opened). */
uint64_t fl_uffd_kernel_features(void);

/* ABI values the 6.1 headers lack (uapi numbers never change once released). */
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif

extern const struct fl_tracker_ops fl_tracker_uffd_wp;
extern const struct fl_tracker_ops fl_tracker_uffd_wp_async;
extern const struct fl_tracker_ops fl_tracker_mprotect;
extern const struct fl_tracker_ops fl_tracker_soft_dirty;
extern const struct fl_tracker_ops fl_tracker_none;

#endif

/* Shared by the two uffd trackers: open a userfaultfd with `features`
 * (those in `required` must be offered, or a message names what is missing),
 * register the region in WP mode and write-protect all of it. Returns the fd. */
int fl_uffd_wp_arm(struct fl_tracker *t, uint64_t features, uint64_t required, const char *why, char *err, size_t errlen);
/* UFFDIO_WRITEPROTECT on [start, start+len): protect, or unprotect (and wake). */
int fl_uffd_wp_range(int fd, void *start, uint64_t len, bool protect, char *err, size_t errlen);
