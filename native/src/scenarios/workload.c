/* Access orders. read-random shuffles every chunk; read-zipf draws as many
 * accesses from a Zipf law over a shuffled ranking of the chunks (a hot set,
 * repeats hit memory); read-sparse touches a random fraction, in random order. */
#include "scenarios/workload.h"
#include "core/internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"first-chunk", "read-seq", "read-random", "read-zipf", "read-sparse", "write-random"};

const char *fl_workload_name(enum fl_workload w)
{
    return names[w];
}

static int parse_double(const char *v, double lo, double hi, bool lo_open, double *out)
{
    char *end;
    double d = strtod(v, &end);
    if (end == v || *end || !(d <= hi) || (lo_open ? !(d > lo) : !(d >= lo)))
        return -1;
    *out = d;
    return 0;
}

int fl_workload_parse(const char *spec, struct fl_workload_opts *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->w = FL_W_READ_SEQ;
    o->seed = 1;
    o->zipf_s = 1.0;
    o->touch_fraction = 0.1;
    o->app_threads = 1;
    char buf[512];
    if (strlen(spec ? spec : "") >= sizeof buf) {
        fl_errf(err, errlen, "run spec too long");
        return -1;
    }
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        const char *v = eq ? eq + 1 : "";
        bool ok = eq != NULL;
        if (eq)
            *eq = 0;
        if (ok && !strcmp(tok, "workload")) {
            ok = false;
            for (size_t i = 0; i < sizeof names / sizeof *names; i++)
                if (!strcmp(v, names[i])) {
                    o->w = (enum fl_workload)i;
                    ok = true;
                }
        } else if (ok && !strcmp(tok, "seed")) {
            char *end;
            o->seed = strtoull(v, &end, 10);
            ok = end != v && !*end;
        } else if (ok && !strcmp(tok, "zipf_s")) {
            ok = !parse_double(v, 0, 10, false, &o->zipf_s);
        } else if (ok && !strcmp(tok, "touch_fraction")) {
            ok = !parse_double(v, 0, 1, true, &o->touch_fraction);
        } else if (ok && !strcmp(tok, "app_threads")) {
            char *end;
            long n = strtol(v, &end, 10);
            ok = end != v && !*end && n >= 1 && n <= FL_MAX_HANDLERS;
            o->app_threads = (int)n;
        } else if (ok && !strcmp(tok, "wait_fill")) {
            ok = !strcmp(v, "0") || !strcmp(v, "1");
            o->wait_fill = !strcmp(v, "1");
        } else {
            ok = false;
        }
        if (!ok) {
            if (eq)
                *eq = '=';
            fl_errf(err, errlen,
                    "bad run option '%s' (workload=first-chunk|read-seq|read-random|read-zipf|read-sparse|write-random, seed=N, "
                    "zipf_s=0..10, touch_fraction=(0,1], app_threads=1..%d, wait_fill=0|1)",
                    tok, FL_MAX_HANDLERS);
            return -1;
        }
    }
    if (o->w == FL_W_WRITE_RANDOM && o->app_threads > 1) {
        fl_errf(err, errlen, "write-random's second pass reads what its first wrote: app_threads must be 1");
        return -1;
    }
    if (o->w == FL_W_FIRST_CHUNK && o->app_threads > 1) {
        fl_errf(err, errlen, "first-chunk is one access: app_threads must be 1");
        return -1;
    }
    return 0;
}

/* xorshift64*: seeded and reproducible. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static void shuffle(uint64_t *o, uint64_t n, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (uint64_t i = n - 1; i > 0; i--) {
        uint64_t j = next_rand(&s) % (i + 1), t = o[i];
        o[i] = o[j];
        o[j] = t;
    }
}

/* n draws from P(rank k) ~ 1/k^s, rank k -> chunk perm[k] (so the hot set is
 * spread over the region, not its first chunks). */
static int zipf_order(uint64_t *o, uint64_t n, const uint64_t *perm, double s_exp, uint64_t seed)
{
    double *cdf = malloc(n * sizeof *cdf);
    if (!cdf)
        return -1;
    double sum = 0;
    for (uint64_t k = 0; k < n; k++)
        cdf[k] = sum += pow((double)(k + 1), -s_exp);
    uint64_t s = seed * 0xD1B54A32D192ED03ull + 7;
    for (uint64_t i = 0; i < n; i++) {
        double u = (double)(next_rand(&s) >> 11) / 9007199254740992.0 * sum;
        uint64_t lo = 0, hi = n - 1;
        while (lo < hi) {
            uint64_t mid = (lo + hi) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        o[i] = perm[lo];
    }
    free(cdf);
    return 0;
}

uint64_t *fl_workload_order(const struct fl_workload_opts *w, uint64_t nchunks, uint64_t *n)
{
    if (w->w == FL_W_FIRST_CHUNK) {
        uint64_t *o = malloc(sizeof *o);
        if (o)
            o[0] = nchunks > 1 ? 1 : 0; /* the chunk one chunk in, as in the thesis */
        *n = 1;
        return o;
    }
    uint64_t *o = malloc(nchunks * sizeof *o);
    if (!o)
        return NULL;
    for (uint64_t i = 0; i < nchunks; i++)
        o[i] = i;
    *n = nchunks;
    if (w->w == FL_W_READ_SEQ)
        return o;
    if (w->w == FL_W_WRITE_RANDOM) { /* two passes, each in its own order */
        uint64_t *two = realloc(o, 2 * nchunks * sizeof *o);
        if (!two) {
            free(o);
            return NULL;
        }
        memcpy(two + nchunks, two, nchunks * sizeof *two);
        shuffle(two, nchunks, w->seed);
        shuffle(two + nchunks, nchunks, w->seed + 1);
        *n = 2 * nchunks;
        return two;
    }
    shuffle(o, nchunks, w->seed);
    if (w->w == FL_W_READ_SPARSE) {
        uint64_t k = (uint64_t)llround(w->touch_fraction * (double)nchunks);
        *n = k ? k : 1;
    } else if (w->w == FL_W_READ_ZIPF) {
        uint64_t *z = malloc(nchunks * sizeof *z);
        if (!z || zipf_order(z, nchunks, o, w->zipf_s, w->seed)) {
            free(z);
            free(o);
            return NULL;
        }
        free(o);
        o = z;
    }
    return o;
}

uint64_t fl_workload_unique(const uint64_t *order, uint64_t n, uint64_t nchunks)
{
    uint8_t *seen = calloc(nchunks ? nchunks : 1, 1);
    if (!seen)
        return n;
    uint64_t u = 0;
    for (uint64_t i = 0; i < n; i++)
        if (!seen[order[i]]) {
            seen[order[i]] = 1;
            u++;
        }
    free(seen);
    return u;
}
