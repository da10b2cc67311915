/* fl_write_track: the write-track scenario, timed in C.
 *
 * The region starts as fl_fill(seed) and so does the remote (the local
 * source's buffer, or the chunk server after an initial full push). Each
 * interval the writer makes its pattern's writes (real stores, timed one by
 * one), the tracker collects the dirty chunks, and they are pushed with WRITE
 * requests (a run of consecutive chunks is one request). The last interval's
 * push is the final sync; then the whole remote is read back and compared
 * with local memory byte for byte. The same writes are first timed on an
 * untracked mapping of the same kind, in the same call, for the slowdown.
 * The writer's own record of what it wrote is compared with every collect:
 * missed_chunks / extra_chunks say how exact the tracker was. */
#include "trackers/tracker.h"
#include "scenarios/writer.h"
#include "core/jbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define VERIFY_STEP (16ull << 20) /* bytes read back per request */

struct mem {
    uint8_t *base, *alias; /* alias: a second view of the memfd (inject_untracked) */
    int memfd;
    uint64_t len;
};

struct wt {
    struct fl_config cfg;
    struct fl_write_opts wo;
    char tracker[32];
    uint64_t intervals, nchunks;
    bool inject;
    struct fl_writer w;
    uint64_t *offs, *idx, *dirty_per;
    uint8_t *truth; /* per chunk: 1 = written this interval, 2 = and collected */
    struct fl_samples wr, wr_untracked;
    uint64_t write_total, untracked_total, collect_total, collect_max, push_total, init_push_ns;
    uint64_t bytes_pushed, requests, missed, extra, faults, bad_chunks, first_bad;
    uint64_t compare_ns; /* the read-back's chunk-by-chunk memcmp: what a tracker-less differ pays */
    int64_t injected; /* offset of the untracked write, -1 none */
};

struct wt_spec {
    struct wt *t;
    char rest[1024]; /* the region keys, for fl_config_parse */
};

/* One key of a write-track spec: a write option, a write-track key, or a region key passed on. */
static int wt_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct wt_spec *p = ctx;
    struct wt *t = p->t;
    int taken = 0;
    if (fl_write_opts_take(k, v, &t->wo, &taken, err, errlen))
        return -1;
    if (taken)
        return 0;
    if (!strcmp(k, "tracker") && strlen(v) < sizeof t->tracker) {
        strcpy(t->tracker, v);
    } else if (!strcmp(k, "intervals")) {
        if (fl_parse_u64(v, 1, 100000, &t->intervals)) {
            fl_errf(err, errlen, "intervals must be 1 to 100000, got '%s'", v);
            return -1;
        }
    } else if (!strcmp(k, "inject_untracked")) {
        t->inject = !strcmp(v, "1");
    } else {
        return fl_spec_pass(p->rest, sizeof p->rest, k, v, err, errlen);
    }
    return 0;
}

static int parse(struct wt *t, const char *spec, char *err, size_t errlen)
{
    struct wt_spec p = {.t = t};
    snprintf(t->tracker, sizeof t->tracker, "uffd-wp");
    t->intervals = 4;
    t->wo = (struct fl_write_opts){FL_PAT_RANDOM, 0.05, 4096};
    if (fl_spec_each(spec, "write-track spec", wt_key, &p, err, errlen))
        return -1;
    return fl_config_parse(p.rest, &t->cfg, err, errlen);
}

/* Anonymous private memory, or (inject) a memfd mapped twice; contents
 * fl_fill(seed); no transparent huge pages, so every tracker works per page. */
static int map_mem(struct mem *m, uint64_t len, bool twice, uint64_t seed, char *err, size_t errlen)
{
    m->len = len;
    m->memfd = -1;
    m->alias = NULL;
    if (twice) {
        m->memfd = memfd_create("faultlab-write-track", MFD_CLOEXEC);
        if (m->memfd < 0 || ftruncate(m->memfd, (off_t)len)) {
            fl_errf(err, errlen, "memfd of %llu bytes: %s", (unsigned long long)len, strerror(errno));
            return -1;
        }
        void *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0);
        m->alias = a == MAP_FAILED ? NULL : a;
    }
    void *b = twice ? mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, m->memfd, 0)
                    : mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    m->base = b == MAP_FAILED ? NULL : b;
    if (!m->base || (twice && !m->alias)) {
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)len, strerror(errno));
        return -1;
    }
    madvise(m->base, len, MADV_NOHUGEPAGE);
    fl_fill(m->base, len, seed, 0);
    return 0;
}

static void unmap_mem(struct mem *m)
{
    if (m->base)
        munmap(m->base, m->len);
    if (m->alias)
        munmap(m->alias, m->len);
    if (m->memfd >= 0)
        close(m->memfd);
    memset(m, 0, sizeof *m);
    m->memfd = -1; /* unmapped: a second unmap_mem closes nothing (0 is stdin) */
}

static uint64_t timed_writes(struct wt *t, uint8_t *base, uint64_t interval, struct fl_samples *s)
{
    uint64_t total = 0;
    for (uint64_t j = 0; j < t->w.per_interval; j++) {
        uint64_t t0 = fl_now();
        fl_writer_store(&t->w, base, t->offs[j], interval, j);
        uint64_t dt = fl_now() - t0;
        fl_samples_add(s, dt);
        total += dt;
    }
    return total;
}

/* Push chunks idx[0..n) (ascending), one WRITE per run of consecutive chunks. */
static int push(struct wt *t, struct fl_source *src, struct fl_conn *c, const uint8_t *base, uint64_t n, char *err, size_t errlen)
{
    const uint64_t chunk = t->cfg.chunk_bytes;
    for (uint64_t i = 0; i < n;) {
        uint64_t j = i + 1;
        while (j < n && t->idx[j] == t->idx[j - 1] + 1)
            j++;
        uint64_t off = t->idx[i] * chunk, len = (j - i) * chunk;
        char cause[FL_ERR_LEN];
        if (src->ops->write(c, off, base + off, len, cause, sizeof cause)) {
            fl_errf(err, errlen, "push of 0x%llx+%llu failed: %s", (unsigned long long)off, (unsigned long long)len, cause);
            return -1;
        }
        t->bytes_pushed += len;
        t->requests++;
        i = j;
    }
    return 0;
}

/* The writer's truth against the tracker's answer. */
static void score(struct wt *t, uint64_t n)
{
    const uint64_t chunk = t->cfg.chunk_bytes;
    for (uint64_t i = 0; i < n; i++) {
        if (t->truth[t->idx[i]])
            t->truth[t->idx[i]] = 2;
        else
            t->extra++;
    }
    for (uint64_t j = 0; j < t->w.per_interval; j++) {
        uint64_t c = t->offs[j] / chunk;
        t->missed += t->truth[c] == 1;
        t->truth[c] = 0;
    }
    if (t->injected >= 0) {
        uint64_t c = (uint64_t)t->injected / chunk;
        t->missed += t->truth[c] == 1;
        t->truth[c] = 0;
    }
}

/* One write through the second mapping, to a chunk this interval did not write:
 * the tracker cannot see it, so only the final comparison can. */
static int inject(struct wt *t, struct mem *m, uint64_t interval, char *err, size_t errlen)
{
    for (uint64_t k = 0; k < t->nchunks; k++) {
        uint64_t c = (k + t->nchunks / 2) % t->nchunks;
        if (!t->truth[c]) {
            t->injected = (int64_t)(c * t->cfg.chunk_bytes);
            fl_writer_store(&t->w, m->alias, (uint64_t)t->injected, interval, 0xdead);
            t->truth[c] = 1;
            return 0;
        }
    }
    fl_errf(err, errlen, "inject_untracked needs a chunk the last interval did not write (lower write_fraction)");
    return -1;
}

/* Read the whole remote back and compare with local memory, chunk by chunk. */
static int verify(struct wt *t, struct fl_source *src, struct fl_conn *c, const uint8_t *base, char *err, size_t errlen)
{
    const uint64_t len = t->cfg.region_bytes, chunk = t->cfg.chunk_bytes;
    uint64_t step = len < VERIFY_STEP ? len : VERIFY_STEP;
    uint8_t *buf = mmap(NULL, step, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        fl_errf(err, errlen, "out of memory for the read-back");
        return -1;
    }
    t->first_bad = UINT64_MAX;
    int rc = 0;
    for (uint64_t off = 0; off < len && !rc; off += step) {
        uint64_t n = len - off < step ? len - off : step;
        char cause[FL_ERR_LEN];
        if (src->ops->read(c, off, buf, n, cause, sizeof cause)) {
            fl_errf(err, errlen, "read-back at 0x%llx failed: %s", (unsigned long long)off, cause);
            rc = -1;
            break;
        }
        uint64_t t0 = fl_now(), bad_here = 0, first_here = UINT64_MAX;
        for (uint64_t x = 0; x < n; x += chunk) /* timed: the full-region compare */
            if (memcmp(buf + x, base + off + x, chunk) && !bad_here++)
                first_here = x;
        t->compare_ns += fl_now() - t0;
        if (bad_here && !t->bad_chunks)
            for (uint64_t b = first_here; t->first_bad == UINT64_MAX; b++)
                if (buf[b] != base[off + b])
                    t->first_bad = off + b;
        t->bad_chunks += bad_here;
    }
    munmap(buf, step);
    return rc;
}

static int run(struct wt *t, char *err, size_t errlen)
{
    const uint64_t len = t->cfg.region_bytes, chunk = t->cfg.chunk_bytes;
    struct mem m = {.memfd = -1}, u = {.memfd = -1};
    struct fl_source *src = NULL;
    struct fl_conn *conn = NULL;
    struct fl_tracker *tr = NULL;
    int rc = -1;
    uint64_t total_writes = t->w.per_interval * t->intervals;
    if (fl_samples_init(&t->wr, total_writes) || fl_samples_init(&t->wr_untracked, total_writes)) {
        fl_errf(err, errlen, "out of memory for statistics");
        goto out;
    }
    /* 1. The same writes on an untracked mapping of the same kind. */
    if (map_mem(&u, len, t->inject, t->cfg.seed, err, errlen))
        goto out;
    for (uint64_t i = 0; i < t->intervals; i++) {
        fl_writer_plan(&t->w, i, t->offs);
        t->untracked_total += timed_writes(t, u.base, i, &t->wr_untracked);
    }
    unmap_mem(&u);

    /* 2. The remote, equal to the region's starting contents. */
    src = !strcmp(t->cfg.source, "tcp") ? fl_source_tcp_create(&t->cfg, err, errlen) : fl_source_local_create(&t->cfg, err, errlen);
    if (!src || src->ops->connect(src, &conn, err, errlen))
        goto out;
    if (map_mem(&m, len, t->inject, t->cfg.seed, err, errlen))
        goto out;
    if (!strcmp(t->cfg.source, "tcp")) { /* the server may hold an earlier cell's writes */
        uint64_t t0 = fl_now();
        uint64_t saved = t->bytes_pushed;
        for (uint64_t i = 0; i < t->nchunks; i++)
            t->idx[i] = i;
        if (push(t, src, conn, m.base, t->nchunks, err, errlen))
            goto out;
        t->bytes_pushed = saved;
        t->requests = 0;
        t->init_push_ns = fl_now() - t0;
    }

    /* 3. Track, write, collect, push. */
    tr = fl_tracker_create(t->tracker, m.base, len, chunk, t->inject, fl_cpu_for(t->cfg.cpus, true), err, errlen);
    if (!tr)
        goto out;
    for (uint64_t i = 0; i < t->intervals; i++) {
        fl_writer_plan(&t->w, i, t->offs);
        for (uint64_t j = 0; j < t->w.per_interval; j++)
            t->truth[t->offs[j] / chunk] = 1;
        t->write_total += timed_writes(t, m.base, i, &t->wr);
        if (t->inject && i + 1 == t->intervals && inject(t, &m, i, err, errlen))
            goto out;
        uint64_t n = 0, t0 = fl_now();
        if (fl_tracker_collect(tr, t->idx, &n, err, errlen))
            goto out;
        uint64_t dt = fl_now() - t0;
        t->collect_total += dt;
        if (dt > t->collect_max)
            t->collect_max = dt;
        t->dirty_per[i] = n;
        score(t, n);
        t0 = fl_now();
        if (push(t, src, conn, m.base, n, err, errlen))
            goto out;
        t->push_total += fl_now() - t0;
    }
    t->faults = atomic_load(&tr->faults);

    /* 4. Read the remote back, compare byte for byte. */
    rc = verify(t, src, conn, m.base, err, errlen);
out:
    fl_tracker_destroy(tr);
    unmap_mem(&u);
    unmap_mem(&m);
    if (conn)
        src->ops->disconnect(conn);
    if (src)
        src->ops->destroy(src);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void json(struct wt *t, char *out, size_t outlen)
{
    struct fl_jbuf j = {.p = out, .len = outlen};
    uint64_t writes = t->w.per_interval * t->intervals, written = writes * t->w.write_bytes;
    uint64_t *sorted = malloc(t->intervals * sizeof *sorted);
    uint64_t p50 = 0, mx = 0;
    if (sorted) {
        memcpy(sorted, t->dirty_per, t->intervals * sizeof *sorted);
        qsort(sorted, t->intervals, sizeof *sorted, cmp_u64);
        p50 = sorted[t->intervals / 2];
        mx = sorted[t->intervals - 1];
        free(sorted);
    }
    fl_jput(&j, "{\"strategy\":\"%s\",\"tracker\":\"%s\",\"scenario\":\"write-track\",\"source\":\"%s\",", t->tracker, t->tracker,
            t->cfg.source);
    fl_jput(&j, "\"region_bytes\":%llu,\"chunk_bytes\":%llu,\"cpus\":\"%s\",\"pattern\":\"%s\",\"write_fraction\":%g,",
            (unsigned long long)t->cfg.region_bytes, (unsigned long long)t->cfg.chunk_bytes, fl_cpus_name(t->cfg.cpus),
            fl_pattern_name(t->wo.pattern), t->wo.fraction);
    fl_jput(&j, "\"write_bytes\":%llu,\"intervals\":%llu,\"writes_per_interval\":%llu,\"writes\":%llu,\"bytes_written\":%llu,",
            (unsigned long long)t->w.write_bytes, (unsigned long long)t->intervals, (unsigned long long)t->w.per_interval,
            (unsigned long long)writes, (unsigned long long)written);
    fl_jput(&j, "\"write_ns\":%llu,\"write_ns_untracked\":%llu,\"write_slowdown\":%.3f,\"write_overhead_ns\":%.1f,",
            (unsigned long long)t->write_total, (unsigned long long)t->untracked_total,
            t->untracked_total ? (double)t->write_total / (double)t->untracked_total : 0.0,
            ((double)t->write_total - (double)t->untracked_total) / (double)writes);
    fl_jput(&j, "\"write_ns_p50\":%llu,\"write_ns_p99\":%llu,\"write_ns_max\":%llu,\"write_untracked_ns_p50\":%llu,",
            (unsigned long long)fl_samples_quantile(&t->wr, 0.5), (unsigned long long)fl_samples_quantile(&t->wr, 0.99),
            (unsigned long long)fl_samples_quantile(&t->wr, 1.0), (unsigned long long)fl_samples_quantile(&t->wr_untracked, 0.5));
    fl_jput(&j, "\"collect_ns_p50\":%llu,\"collect_ns_max\":%llu,\"collect_ns_total\":%llu,\"push_ns_total\":%llu,",
            (unsigned long long)(t->collect_total / t->intervals), (unsigned long long)t->collect_max, (unsigned long long)t->collect_total,
            (unsigned long long)t->push_total);
    fl_jput(&j, "\"dirty_chunks\":\"");
    for (uint64_t i = 0; i < t->intervals; i++)
        fl_jput(&j, "%s%llu", i ? ";" : "", (unsigned long long)t->dirty_per[i]);
    fl_jput(&j, "\",\"dirty_chunks_p50\":%llu,\"dirty_chunks_max\":%llu,\"bytes_pushed\":%llu,\"push_requests\":%llu,",
            (unsigned long long)p50, (unsigned long long)mx, (unsigned long long)t->bytes_pushed, (unsigned long long)t->requests);
    fl_jput(&j, "\"write_amplification\":%.4f,\"faults\":%llu,\"missed_chunks\":%llu,\"extra_chunks\":%llu,",
            written ? (double)t->bytes_pushed / (double)written : 0.0, (unsigned long long)t->faults, (unsigned long long)t->missed,
            (unsigned long long)t->extra);
    fl_jput(&j, "\"compare_ns\":%llu,", (unsigned long long)t->compare_ns);
    fl_jput(&j, "\"tracker_exact\":%s,\"init_push_ns\":%llu,\"inject_untracked\":%s,", t->missed || t->extra ? "false" : "true",
            (unsigned long long)t->init_push_ns, t->inject ? "true" : "false");
    if (t->injected >= 0)
        fl_jput(&j, "\"injected_offset\":%lld,", (long long)t->injected);
    fl_jput(&j, "\"verified\":%s,\"bad_chunks\":%llu", t->bad_chunks ? "false" : "true", (unsigned long long)t->bad_chunks);
    if (t->bad_chunks)
        fl_jput(&j, ",\"first_bad_offset\":%llu", (unsigned long long)t->first_bad);
    fl_jput(&j, "}");
}

struct wt_call {
    const char *spec;
    char *out;
    size_t outlen;
    int rc;
};

static void *wt_main(void *arg)
{
    struct wt_call *a = arg;
    struct wt *t = calloc(1, sizeof *t);
    char err[FL_ERR_LEN];
    a->rc = -1;
    if (!t) {
        fl_errf(a->out, a->outlen, "out of memory");
        return NULL;
    }
    t->injected = -1;
    if (parse(t, a->spec, err, sizeof err))
        goto fail;
    fl_pin_cpu(fl_cpu_for(t->cfg.cpus, false));
    t->nchunks = t->cfg.region_bytes / t->cfg.chunk_bytes;
    if (fl_writer_init(&t->w, &t->wo, t->cfg.seed, t->nchunks, t->cfg.chunk_bytes, err, sizeof err))
        goto fail;
    t->offs = malloc(t->w.per_interval * sizeof *t->offs);
    t->idx = malloc(t->nchunks * sizeof *t->idx);
    t->dirty_per = calloc(t->intervals, sizeof *t->dirty_per);
    t->truth = calloc(t->nchunks, 1);
    if (!t->offs || !t->idx || !t->dirty_per || !t->truth) {
        fl_errf(err, sizeof err, "out of memory");
        goto fail;
    }
    if (run(t, err, sizeof err))
        goto fail;
    json(t, a->out, a->outlen);
    if (strlen(a->out) + 1 >= a->outlen)
        fl_errf(err, sizeof err, "write-track: result larger than the %zu-byte output buffer", a->outlen);
    else
        a->rc = 0;
fail:
    if (a->rc)
        fl_errf(a->out, a->outlen, "%s", err);
    fl_writer_free(&t->w);
    fl_samples_free(&t->wr);
    fl_samples_free(&t->wr_untracked);
    free(t->offs);
    free(t->idx);
    free(t->dirty_per);
    free(t->truth);
    free(t);
    return NULL;
}

int fl_write_track(const char *spec, char *out, size_t outlen)
{
    struct wt_call a = {spec, out, outlen, -1};
    pthread_t th;
    int e = pthread_create(&th, NULL, wt_main, &a);
    if (e) {
        fl_errf(out, outlen, "cannot start the write-track thread: %s", strerror(e));
        return -1;
    }
    pthread_join(th, NULL);
    return a.rc;
}
