/* The write workload shared by write-track and migrate: which bytes interval i
 * writes, and with what, as a pure function of (seed, pattern, i), so a
 * destination can replay a source's writes to know its final contents. */
#ifndef FAULTLAB_WRITER_H
#define FAULTLAB_WRITER_H

#include "core/internal.h"

enum fl_pattern { FL_PAT_SEQ, FL_PAT_RANDOM, FL_PAT_HOT };

struct fl_writer {
    enum fl_pattern pattern;
    uint64_t seed, nchunks, chunk, write_bytes;
    uint64_t per_interval; /* writes each interval */
    uint64_t *perm; /* random: scratch permutation (nchunks) */
};

/* Writer options in a spec: pattern=seq|random|hot write_fraction=F (0<F<=1)
 * write_bytes=N (multiple of 8, at most the chunk). Other keys are copied to
 * rest (space separated) for the next parser. */
struct fl_write_opts {
    enum fl_pattern pattern;
    double fraction;
    uint64_t write_bytes;
};
int fl_write_opts_take(const char *key, const char *val, struct fl_write_opts *o, int *taken, char *err, size_t errlen);
const char *fl_pattern_name(enum fl_pattern p);

int fl_writer_init(struct fl_writer *w, const struct fl_write_opts *o, uint64_t seed, uint64_t nchunks, uint64_t chunk, char *err,
                   size_t errlen);
void fl_writer_free(struct fl_writer *w);
/* Byte offsets of interval i's writes, per_interval of them. seq: a run of
 * consecutive chunks continuing where the previous interval stopped; random:
 * distinct chunks uniformly; hot: 90% of writes into the first tenth of the
 * region, repeats allowed (so bytes written can exceed bytes pushed). */
void fl_writer_plan(struct fl_writer *w, uint64_t interval, uint64_t *offs);
/* One write: real stores of write_bytes at base+off, values a function of
 * (seed, interval, k) so a re-write always changes the bytes. */
static inline void fl_writer_store(const struct fl_writer *w, uint8_t *base, uint64_t off, uint64_t interval, uint64_t k)
{
    uint64_t v = (w->seed + 1) * 0x9E3779B97F4A7C15ull ^ (interval + 1) * 0xBF58476D1CE4E5B9ull ^ k * 0x94D049BB133111EBull;
    uint64_t *p = (uint64_t *)(base + off);
    for (uint64_t i = 0; i < w->write_bytes / 8; i++)
        p[i] = v + i;
}
/* Replay intervals [0, n) onto base (the writer's deterministic effect). */
void fl_writer_replay(struct fl_writer *w, uint8_t *base, uint64_t n, uint64_t *offs);

#endif

/* migrate: the source region starts as fl_fill(seed ^ FL_MIGRATE_SALT), never
 * the chunk server's fl_fill(seed), so a chunk that was not moved cannot match
 * by accident. */
#define FL_MIGRATE_SALT 0x6d69677261746521ull
