/* Write patterns (see scenarios/writer.h). */
#include "scenarios/writer.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 32);
}

const char *fl_pattern_name(enum fl_pattern p)
{
    return p == FL_PAT_SEQ ? "seq" : p == FL_PAT_RANDOM ? "random" : "hot";
}

int fl_write_opts_take(const char *k, const char *v, struct fl_write_opts *o, int *taken, char *err, size_t errlen)
{
    char *end;
    *taken = 1;
    if (!strcmp(k, "pattern")) {
        if (!strcmp(v, "seq"))
            o->pattern = FL_PAT_SEQ;
        else if (!strcmp(v, "random"))
            o->pattern = FL_PAT_RANDOM;
        else if (!strcmp(v, "hot"))
            o->pattern = FL_PAT_HOT;
        else {
            fl_errf(err, errlen, "pattern must be seq, random or hot, got '%s'", v);
            return -1;
        }
    } else if (!strcmp(k, "write_fraction")) {
        o->fraction = strtod(v, &end);
        if (end == v || *end || !(o->fraction > 0 && o->fraction <= 1)) {
            fl_errf(err, errlen, "write_fraction must be a number in (0, 1], got '%s'", v);
            return -1;
        }
    } else if (!strcmp(k, "write_bytes")) {
        o->write_bytes = strtoull(v, &end, 10);
        if (end == v || *end || !o->write_bytes || o->write_bytes % 8) {
            fl_errf(err, errlen, "write_bytes must be a positive multiple of 8, got '%s'", v);
            return -1;
        }
    } else {
        *taken = 0;
    }
    return 0;
}

int fl_writer_init(struct fl_writer *w, const struct fl_write_opts *o, uint64_t seed, uint64_t nchunks, uint64_t chunk, char *err,
                   size_t errlen)
{
    memset(w, 0, sizeof *w);
    if (o->write_bytes > chunk) {
        fl_errf(err, errlen, "write_bytes %llu is larger than the chunk (%llu bytes)", (unsigned long long)o->write_bytes,
                (unsigned long long)chunk);
        return -1;
    }
    w->pattern = o->pattern;
    w->seed = seed;
    w->nchunks = nchunks;
    w->chunk = chunk;
    w->write_bytes = o->write_bytes;
    w->per_interval = (uint64_t)(o->fraction * (double)nchunks + 0.5);
    if (!w->per_interval)
        w->per_interval = 1;
    if (w->pattern == FL_PAT_RANDOM && !(w->perm = malloc(nchunks * sizeof *w->perm))) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

void fl_writer_free(struct fl_writer *w)
{
    free(w->perm);
    w->perm = NULL;
}

void fl_writer_plan(struct fl_writer *w, uint64_t interval, uint64_t *offs)
{
    const uint64_t n = w->nchunks, k = w->per_interval, slots = w->chunk / w->write_bytes;
    uint64_t s = mix(w->seed * 0x9E3779B97F4A7C15ull + interval + 1);
    if (w->pattern == FL_PAT_RANDOM) /* a fresh partial shuffle: any interval can be planned alone */
        for (uint64_t i = 0; i < n; i++)
            w->perm[i] = i;
    for (uint64_t j = 0; j < k; j++) {
        uint64_t c, r = mix(s + j);
        if (w->pattern == FL_PAT_SEQ) {
            c = (interval * k + j) % n;
        } else if (w->pattern == FL_PAT_RANDOM) {
            uint64_t pick = j + r % (n - j); /* k <= n: distinct chunks */
            c = w->perm[pick];
            w->perm[pick] = w->perm[j];
            w->perm[j] = c;
        } else {
            uint64_t hot = n / 10 ? n / 10 : 1;
            c = r % 10 < 9 ? (r >> 8) % hot : (r >> 8) % n;
        }
        offs[j] = c * w->chunk + (mix(r) % slots) * w->write_bytes;
    }
}

void fl_writer_replay(struct fl_writer *w, uint8_t *base, uint64_t n, uint64_t *offs)
{
    for (uint64_t i = 0; i < n; i++) {
        fl_writer_plan(w, i, offs);
        for (uint64_t j = 0; j < w->per_interval; j++)
            fl_writer_store(w, base, offs[j], i, j);
    }
}
