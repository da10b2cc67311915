/* Tracker `none`: no tracking at all. Writes run at full speed (the baseline
 * for write slowdown) and, knowing nothing, collect must report every chunk:
 * the "push the whole region each sync" baseline for bytes pushed. */
#include "trackers/tracker.h"

static int none_create(struct fl_tracker *t, char *err, size_t errlen)
{
    (void)t;
    (void)err;
    (void)errlen;
    return 0;
}

static int none_collect(struct fl_tracker *t, uint64_t *idx, uint64_t *n, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    for (uint64_t i = 0; i < t->nchunks; i++)
        idx[i] = i;
    *n = t->nchunks;
    return 0;
}

static void none_destroy(struct fl_tracker *t)
{
    (void)t;
}

const struct fl_tracker_ops fl_tracker_none = {
    .name = "none",
    .create = none_create,
    .collect = none_collect,
    .destroy = none_destroy,
};
