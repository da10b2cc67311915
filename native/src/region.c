/* The public API: create a region for a strategy and a source, run one
 * workload on a pinned C thread, report statistics as JSON, destroy. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

__thread struct fl_wctx *fl_tls_wctx __attribute__((tls_model("initial-exec")));

static const struct fl_strategy_ops *const strategies[] = {
    &fl_strategy_uffd, &fl_strategy_sigsegv, &fl_strategy_memory, &fl_strategy_disk, &fl_strategy_eager,
};

void fl_region_fail(struct fl_region *r, const char *msg)
{
    int expected = 0;
    if (atomic_compare_exchange_strong(&r->failed, &expected, 1)) {
        size_t i = 0;
        for (; msg[i] && i + 1 < sizeof r->fail_msg; i++)
            r->fail_msg[i] = msg[i];
        r->fail_msg[i] = 0;
        atomic_store(&r->failed, 2); /* message complete */
    }
}

static bool uses_source(const struct fl_region *r)
{
    return strcmp(r->ops->name, "memory") && strcmp(r->ops->name, "disk");
}

fl_region *fl_region_create(const char *spec, char *err, size_t errlen)
{
    struct fl_config cfg;
    if (fl_config_parse(spec, &cfg, err, errlen))
        return NULL;
    const struct fl_strategy_ops *ops = NULL;
    for (size_t i = 0; i < sizeof strategies / sizeof *strategies; i++)
        if (!strcmp(strategies[i]->name, cfg.strategy))
            ops = strategies[i];
    if (!ops) {
        fl_errf(err, errlen, "unknown strategy '%s' (known: uffd, sigsegv, memory, disk, eager)", cfg.strategy);
        return NULL;
    }
    if (strcmp(cfg.source, "local") && strcmp(cfg.source, "tcp")) {
        fl_errf(err, errlen, "unknown source '%s' (known: local, tcp)", cfg.source);
        return NULL;
    }
    struct fl_region *r = calloc(1, sizeof *r);
    if (!r) {
        fl_errf(err, errlen, "out of memory");
        return NULL;
    }
    r->cfg = cfg;
    r->ops = ops;
    r->page_bytes = (uint64_t)sysconf(_SC_PAGESIZE);
    r->nchunks = cfg.region_bytes / cfg.chunk_bytes;
    if (uses_source(r)) {
        r->source = !strcmp(cfg.source, "tcp") ? fl_source_tcp_create(&cfg, err, errlen)
                                               : fl_source_local_create(&cfg, err, errlen);
        if (!r->source) {
            free(r);
            return NULL;
        }
    }
    if (ops->create(r, err, errlen)) {
        if (r->source)
            r->source->ops->destroy(r->source);
        free(r);
        return NULL;
    }
    return r;
}

void fl_region_destroy(fl_region *r)
{
    if (!r)
        return;
    r->ops->destroy(r);
    for (int i = 0; i < FL_MAX_HANDLERS; i++) {
        fl_samples_free(&r->hstats[i].fetch_ns);
        fl_samples_free(&r->hstats[i].install_ns);
    }
    if (r->source)
        r->source->ops->destroy(r->source);
    free(r);
}

/* ---- workloads ------------------------------------------------------------ */
enum workload { W_FIRST_CHUNK, W_READ_SEQ, W_READ_RANDOM };

struct run_args {
    struct fl_region *r;
    enum workload w;
    uint64_t seed;
    /* results */
    struct fl_samples access_ns; /* one sample per chunk touched */
    uint64_t total_ns, first_ns, touched, bad_words, first_bad;
    int rc;
    char err[FL_ERR_LEN];
};

/* xorshift64*: a seeded, reproducible order for read-random. */
static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1Dull;
}

static uint64_t *chunk_order(const struct run_args *a, uint64_t *n)
{
    const struct fl_region *r = a->r;
    if (a->w == W_FIRST_CHUNK) {
        uint64_t *o = malloc(sizeof *o);
        if (o)
            o[0] = r->nchunks > 1 ? 1 : 0; /* the chunk one chunk in, as in the thesis */
        *n = 1;
        return o;
    }
    uint64_t *o = malloc(r->nchunks * sizeof *o);
    if (!o)
        return NULL;
    for (uint64_t i = 0; i < r->nchunks; i++)
        o[i] = i;
    if (a->w == W_READ_RANDOM) {
        uint64_t s = a->seed * 0x9E3779B97F4A7C15ull + 1;
        for (uint64_t i = r->nchunks - 1; i > 0; i--) {
            uint64_t j = next_rand(&s) % (i + 1);
            uint64_t t = o[i];
            o[i] = o[j];
            o[j] = t;
        }
    }
    *n = r->nchunks;
    return o;
}

/* The timed accesses. Kept in its own function so that nothing live in the
 * caller is clobbered when a signal handler jumps back to the sigsetjmp. */
static void access_loop(struct run_args *a, struct fl_wctx *ctx, const uint64_t *order, uint64_t n, uint8_t *scratch)
{
    struct fl_region *r = a->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    /* A strategy that cannot serve a fault (sigsegv) jumps back here. */
    if (sigsetjmp(ctx->abort_jmp, 1)) {
        ctx->jmp_armed = 0;
        return;
    }
    ctx->jmp_armed = 1;
    for (uint64_t i = 0; i < n; i++) {
        const uint8_t *p = r->base + order[i] * chunk;
        uint64_t t0 = fl_now();
        memcpy(scratch, p, chunk); /* the access: faults the chunk in if lazy */
        uint64_t t1 = fl_now();
        if (atomic_load(&r->failed))
            break;
        fl_samples_add(&a->access_ns, t1 - t0);
        a->total_ns += t1 - t0;
        if (i == 0)
            a->first_ns = t1 - t0;
        a->touched++;
        uint64_t bad_at;
        uint64_t bad = fl_verify(scratch, chunk, r->cfg.seed, order[i] * chunk, &bad_at);
        if (bad && !a->bad_words)
            a->first_bad = bad_at;
        a->bad_words += bad;
    }
    ctx->jmp_armed = 0;
}

static void *workload_main(void *arg)
{
    struct run_args *a = arg;
    struct fl_region *r = a->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    struct fl_wctx ctx = {.r = r};
    uint64_t n = 0, *order = NULL;
    uint8_t *scratch = NULL;

    fl_pin_cpu(fl_cpu_for(r->cfg.cpus, false));
    if (r->source && r->source->ops->connect(r->source, &ctx.conn, a->err, sizeof a->err))
        goto fail;
    order = chunk_order(a, &n);
    scratch = aligned_alloc(64, chunk);
    if (!order || !scratch || fl_samples_init(&a->access_ns, n)) {
        fl_errf(a->err, sizeof a->err, "out of memory for the workload");
        goto fail;
    }
    memset(scratch, 0, chunk); /* fault the scratch in before timing */
    fl_tls_wctx = &ctx;
    if (r->ops->before_workload && r->ops->before_workload(r, a->err, sizeof a->err))
        goto fail;

    access_loop(a, &ctx, order, n, scratch);
    if (r->ops->after_workload)
        r->ops->after_workload(r);
    fl_tls_wctx = NULL;
    if (atomic_load(&r->failed)) {
        while (atomic_load(&r->failed) != 2)
            ; /* the failing thread is still writing its message */
        fl_errf(a->err, sizeof a->err, "%s", r->fail_msg);
        goto fail;
    }
    free(order);
    free(scratch);
    if (ctx.conn)
        r->source->ops->disconnect(ctx.conn);
    a->rc = 0;
    return NULL;
fail:
    fl_tls_wctx = NULL;
    free(order);
    free(scratch);
    if (ctx.conn)
        r->source->ops->disconnect(ctx.conn);
    a->rc = -1;
    return NULL;
}

/* ---- JSON output ------------------------------------------------------------ */
struct jbuf {
    char *p;
    size_t len, used;
};

__attribute__((format(printf, 2, 3))) static void jput(struct jbuf *j, const char *fmt, ...)
{
    if (j->used >= j->len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->p + j->used, j->len - j->used, fmt, ap);
    va_end(ap);
    if (n > 0)
        j->used += (size_t)n;
}

static const char *workload_name(enum workload w)
{
    return w == W_FIRST_CHUNK ? "first-chunk" : w == W_READ_SEQ ? "read-seq" : "read-random";
}

static void merged_quantiles(struct fl_region *r, int which, uint64_t *p50)
{
    /* Merge handler threads' samples into one buffer for exact quantiles. */
    uint64_t total = 0;
    for (int i = 0; i < r->nhstats; i++)
        total += which ? r->hstats[i].install_ns.n : r->hstats[i].fetch_ns.n;
    *p50 = 0;
    if (!total)
        return;
    struct fl_samples m;
    if (fl_samples_init(&m, total))
        return;
    for (int i = 0; i < r->nhstats; i++) {
        struct fl_samples *s = which ? &r->hstats[i].install_ns : &r->hstats[i].fetch_ns;
        for (uint64_t k = 0; k < s->n; k++)
            fl_samples_add(&m, s->v[k]);
    }
    *p50 = fl_samples_quantile(&m, 0.5);
    fl_samples_free(&m);
}

static void write_json(struct fl_region *r, struct run_args *a, char *out, size_t outlen)
{
    struct jbuf j = {out, outlen, 0};
    uint64_t faults = 0, dups = 0, fetched = 0, fetch_p50, install_p50;
    for (int i = 0; i < r->nhstats; i++) {
        faults += r->hstats[i].faults;
        dups += r->hstats[i].duplicates;
        fetched += r->hstats[i].bytes_fetched;
    }
    merged_quantiles(r, 0, &fetch_p50);
    merged_quantiles(r, 1, &install_p50);
    uint64_t total = a->total_ns + r->prefill_ns;
    uint64_t bytes_read = a->touched * r->cfg.chunk_bytes;
    double mibps = total ? (double)bytes_read / (1 << 20) / ((double)total / 1e9) : 0;
    jput(&j, "{\"strategy\":\"%s\",\"scenario\":\"%s\",\"source\":\"%s\",", r->ops->name, workload_name(a->w),
         r->source ? r->source->ops->name : "none");
    jput(&j, "\"region_bytes\":%llu,\"chunk_bytes\":%llu,\"cpus\":\"%s\",\"handler_threads\":%d,",
         (unsigned long long)r->cfg.region_bytes, (unsigned long long)r->cfg.chunk_bytes, fl_cpus_name(r->cfg.cpus),
         r->cfg.handler_threads);
    jput(&j, "\"faults\":%llu,\"duplicate_faults\":%llu,\"bytes_fetched\":%llu,\"chunks_touched\":%llu,\"bytes_read\":%llu,",
         (unsigned long long)faults, (unsigned long long)dups, (unsigned long long)(fetched + (r->prefill_ns ? r->cfg.region_bytes : 0)),
         (unsigned long long)a->touched, (unsigned long long)bytes_read);
    jput(&j, "\"first_access_ns\":%llu,\"total_ns\":%llu,\"throughput_mibps\":%.3f,\"prefill_ns\":%llu,",
         (unsigned long long)(a->first_ns + r->prefill_ns), (unsigned long long)total, mibps,
         (unsigned long long)r->prefill_ns);
    jput(&j, "\"fault_ns_p50\":%llu,\"fault_ns_p99\":%llu,\"fault_ns_max\":%llu,\"fault_ns_mean\":%.1f,",
         (unsigned long long)fl_samples_quantile(&a->access_ns, 0.5),
         (unsigned long long)fl_samples_quantile(&a->access_ns, 0.99),
         (unsigned long long)fl_samples_quantile(&a->access_ns, 1.0),
         a->touched ? (double)a->total_ns / (double)a->touched : 0.0);
    jput(&j, "\"fault_ns_cdf\":\"");
    for (int q = 0; q <= 20; q++)
        jput(&j, "%s%llu", q ? ";" : "", (unsigned long long)fl_samples_quantile(&a->access_ns, q / 20.0));
    jput(&j, "\",\"fetch_ns_p50\":%llu,\"install_ns_p50\":%llu,", (unsigned long long)fetch_p50,
         (unsigned long long)install_p50);
    jput(&j, "\"verified\":%s,\"bad_words\":%llu", a->bad_words || !a->touched ? "false" : "true",
         (unsigned long long)a->bad_words);
    if (a->bad_words)
        jput(&j, ",\"first_bad_offset\":%llu", (unsigned long long)a->first_bad);
    jput(&j, "}");
}

int fl_run(fl_region *r, const char *run_spec, char *out, size_t outlen)
{
    struct run_args *a = calloc(1, sizeof *a);
    if (!a) {
        fl_errf(out, outlen, "out of memory");
        return -1;
    }
    a->r = r;
    a->w = W_READ_SEQ;
    a->seed = 1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", run_spec ? run_spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!strcmp(tok, "workload=first-chunk")) a->w = W_FIRST_CHUNK;
        else if (!strcmp(tok, "workload=read-seq")) a->w = W_READ_SEQ;
        else if (!strcmp(tok, "workload=read-random")) a->w = W_READ_RANDOM;
        else if (!strncmp(tok, "seed=", 5)) a->seed = strtoull(tok + 5, NULL, 10);
        else {
            fl_errf(out, outlen, "bad run option '%s' (workload=first-chunk|read-seq|read-random, seed=N)", tok);
            free(a);
            return -1;
        }
    }
    if (r->ran) {
        fl_errf(out, outlen, "a region runs once (its faults are first touches): create a fresh one");
        free(a);
        return -1;
    }
    r->ran = true;
    pthread_t t;
    int e = pthread_create(&t, NULL, workload_main, a);
    if (e) {
        fl_errf(out, outlen, "cannot start the workload thread: %s", strerror(e));
        free(a);
        return -1;
    }
    pthread_join(t, NULL);
    if (r->ops->quiesce)
        r->ops->quiesce(r);
    int rc = a->rc;
    if (rc)
        fl_errf(out, outlen, "%s", a->err);
    else
        write_json(r, a, out, outlen);
    fl_samples_free(&a->access_ns);
    free(a);
    return rc;
}
