/* prefetch=none: no engine at all; the fault path alone, as the thesis measured. */
#include "prefetch/prefetch.h"

static int none_init(struct fl_pf_policy *p, const char *arg, char *err, size_t errlen)
{
    (void)p;
    if (arg) {
        fl_errf(err, errlen, "prefetch=none takes no argument");
        return -1;
    }
    return 0;
}

static void none_event(struct fl_pf_policy *p, uint64_t idx)
{
    (void)p;
    (void)idx;
}

static bool none_refill(struct fl_pf_policy *p)
{
    (void)p;
    return false;
}

const struct fl_pf_policy_ops fl_pf_none = {
    .name = "none",
    .init = none_init,
    .on_fault = none_event,
    .on_trigger = none_event,
    .refill = none_refill,
};
