/* Shared by the native tests: run one workload on a fresh region and read
 * fields of its flat JSON result. */
#ifndef FAULTLAB_RUN_JSON_H
#define FAULTLAB_RUN_JSON_H
#include "../include/faultlab.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The last result (or "create: <error>"). */
static char out[1 << 20];

/* An integer field, -1 when absent. */
__attribute__((unused)) static long long jnum(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

__attribute__((unused)) static int jtrue(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":true", key);
    return strstr(json, pat) != NULL;
}

/* Create, run once, destroy; the result is left in out. */
__attribute__((unused)) static int run(const char *spec, const char *run_spec)
{
    char err[512];
    fl_region *r = fl_region_create(spec, err, sizeof err);
    if (!r) {
        snprintf(out, sizeof out, "create: %s", err);
        return -1;
    }
    int rc = fl_run(r, run_spec, out, sizeof out);
    fl_region_destroy(r);
    return rc;
}
#endif
