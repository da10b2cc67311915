/* Pre-copy's stop rule (migrate_plan.h). */
#include "scenarios/migrate_plan.h"

uint64_t fl_mig_expected_downtime_ns(const struct fl_mig_measure *m)
{
    if (!m->bytes_per_s)
        return UINT64_MAX;
    /* bytes * 1e9 / bw without overflowing for any region this lab maps (< 2^44 bytes). */
    uint64_t push = (uint64_t)((unsigned __int128)m->dirty_bytes * 1000000000u / m->bytes_per_s);
    return m->collect_ns + push + 2 * m->rtt_ns;
}

enum fl_mig_stop fl_mig_decide(const struct fl_mig_measure *m, uint64_t rounds, uint64_t max_rounds, uint64_t limit_ns,
                               uint64_t postcopy_after)
{
    if (postcopy_after)
        return rounds >= postcopy_after ? FL_MIG_POSTCOPY_AFTER : FL_MIG_GO_ON;
    if (fl_mig_expected_downtime_ns(m) <= limit_ns)
        return FL_MIG_CONVERGED;
    if (rounds >= max_rounds)
        return FL_MIG_MAX_ROUNDS;
    return FL_MIG_GO_ON;
}

const char *fl_mig_stop_name(enum fl_mig_stop s)
{
    switch (s) {
    case FL_MIG_CONVERGED:
        return "converged";
    case FL_MIG_MAX_ROUNDS:
        return "max-rounds";
    case FL_MIG_POSTCOPY_AFTER:
        return "postcopy-after";
    case FL_MIG_POSTCOPY:
        return "postcopy";
    default:
        return "running";
    }
}
