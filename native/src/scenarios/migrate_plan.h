/* When pre-copy stops: QEMU's rule (migration_iteration_run: the remaining
 * dirty bytes over the measured bandwidth against downtime-limit), with the
 * round trips this lab's cut-over costs added, and a bound on the rounds.
 * Pure functions of measured numbers, so the decision has table tests. */
#ifndef FAULTLAB_MIGRATE_PLAN_H
#define FAULTLAB_MIGRATE_PLAN_H
#include <stdint.h>

enum fl_mig_stop {
    FL_MIG_GO_ON = 0, /* another pre-copy round */
    FL_MIG_CONVERGED, /* the rest fits the downtime limit: stop and copy */
    FL_MIG_MAX_ROUNDS, /* max_rounds pushes made: stop and copy whatever is left */
    FL_MIG_POSTCOPY_AFTER, /* hybrid: postcopy_after rounds made: stop, the destination pulls the rest from the source */
    FL_MIG_POSTCOPY, /* post-copy: no rounds at all */
};

struct fl_mig_measure {
    uint64_t dirty_bytes; /* found by the last collect */
    uint64_t bytes_per_s; /* push bandwidth measured so far (0: unknown) */
    uint64_t rtt_ns; /* one empty round trip to the store */
    uint64_t collect_ns; /* the last collect's cost (the cut-over repeats it) */
};

/* Expected downtime if the source stopped now: the final collect, the push
 * of the dirty bytes (one pipelined batch: bytes / bandwidth + one round
 * trip) and the destination's first access (one more round trip). With no
 * bandwidth measured yet: UINT64_MAX. */
uint64_t fl_mig_expected_downtime_ns(const struct fl_mig_measure *m);

/* After `rounds` pushes (round 0 included) and a collect measured as m.
 * postcopy_after > 0 (hybrid): switch after that many rounds, whatever the
 * estimate (QEMU's postcopy-after-precopy); else pre-copy's rule. */
enum fl_mig_stop fl_mig_decide(const struct fl_mig_measure *m, uint64_t rounds, uint64_t max_rounds, uint64_t limit_ns,
                               uint64_t postcopy_after);

const char *fl_mig_stop_name(enum fl_mig_stop s);
#endif
