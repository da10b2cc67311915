/* Workloads: which chunks a run touches, in which order (core/region.c times them). */
#ifndef FAULTLAB_WORKLOAD_H
#define FAULTLAB_WORKLOAD_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fl_workload { FL_W_FIRST_CHUNK, FL_W_READ_SEQ, FL_W_READ_RANDOM, FL_W_READ_ZIPF, FL_W_READ_SPARSE, FL_W_WRITE_RANDOM };

/* write-random: two passes over every chunk in two random orders. The first
 * reads each chunk and overwrites the chosen half (fl_write_chosen) with
 * fl_fill(seed ^ FL_WRITE_SEED_XOR, offset); the second reads each again and
 * expects what was written, so a chunk written, evicted and fetched back must
 * return the write (resident_limit). */
#define FL_WRITE_SEED_XOR 0x5a5a5a5a5a5a5a5aull
static inline int fl_write_chosen(uint64_t seed, uint64_t idx)
{
    uint64_t h = (idx + 1) * 0x9E3779B97F4A7C15ull ^ seed;
    h ^= h >> 29;
    return (int)((h * 0xBF58476D1CE4E5B9ull) >> 63);
}

struct fl_workload_opts {
    enum fl_workload w;
    uint64_t seed;
    double zipf_s; /* read-zipf: skew (0 = uniform; 1 = classic Zipf) */
    double touch_fraction; /* read-sparse: share of the chunks touched */
    int app_threads; /* threads faulting at once, each on its own share of the order */
    bool wait_fill; /* after the accesses, wait for a region-filling prefetch and verify all */
};

/* Parse the run spec (see faultlab.h). */
int fl_workload_parse(const char *spec, struct fl_workload_opts *o, char *err, size_t errlen);
const char *fl_workload_name(enum fl_workload w);
/* The chunk indices to access, in order (malloc'd, *n of them); NULL when out of memory. */
uint64_t *fl_workload_order(const struct fl_workload_opts *o, uint64_t nchunks, uint64_t *n);
/* Distinct chunks in order[0..n). */
uint64_t fl_workload_unique(const uint64_t *order, uint64_t n, uint64_t nchunks);
#endif
