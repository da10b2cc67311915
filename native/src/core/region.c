/* The public API: create a region for a strategy and a source, run one
 * workload on a pinned C thread, report statistics as JSON, destroy. */
#include "core/internal.h"
#include "core/jbuf.h"
#include "prefetch/prefetch.h"
#include "core/resident.h"
#include "scenarios/workload.h"

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
    if (cfg.handler == FL_HANDLER_PROCESS && ops != &fl_strategy_uffd) {
        fl_errf(err, errlen,
                ops == &fl_strategy_sigsegv
                    ? "handler=process is for uffd: sigsegv's handler is a signal handler, which runs on the faulting thread, so it has no "
                      "process of its own"
                    : "handler=process is for uffd (%s takes no faults to hand over)",
                cfg.strategy);
        return NULL;
    }
    struct fl_region *r = aligned_alloc(_Alignof(struct fl_region), sizeof *r); /* its progress counters are cache-line aligned */
    if (!r) {
        fl_errf(err, errlen, "out of memory");
        return NULL;
    }
    memset(r, 0, sizeof *r);
    r->cfg = cfg;
    r->ops = ops;
    r->page_bytes = (uint64_t)sysconf(_SC_PAGESIZE);
    r->nchunks = cfg.region_bytes / cfg.chunk_bytes;
    /* handler=process: the handler process opens the source, and every connection to it. */
    if (uses_source(r) && cfg.handler != FL_HANDLER_PROCESS) {
        r->source = !strcmp(cfg.source, "tcp") ? fl_source_tcp_create(&cfg, err, errlen) : fl_source_local_create(&cfg, err, errlen);
        if (!r->source) {
            free(r);
            return NULL;
        }
    }
    /* Timed here, around every strategy's set-up alike (mapping, pre-population,
     * registration, handler and prefetch threads), so set-up costs compare fairly
     * even where a strategy moves work out of its faults into its set-up. */
    uint64_t t0 = fl_now();
    if (ops->create(r, err, errlen)) {
        if (r->source)
            r->source->ops->destroy(r->source);
        free(r);
        return NULL;
    }
    r->setup_ns = fl_now() - t0;
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
/* One run: app_threads workers, each on its own share of the order (a
 * contiguous slice, so read-seq threads stream their own part), each with its
 * own source connection (a sigsegv fault is served on the faulting thread). */
struct worker {
    struct run_args *a;
    int index;
    pthread_t thread;
    bool started;
    const uint64_t *order;
    uint64_t n;
    struct fl_wctx ctx;
    struct fl_samples access_ns;
    uint64_t total_ns, first_ns, touched, bad_words, first_bad;
    long minflt; /* minor page faults this thread took during its timed accesses */
    uint64_t cpu_ns; /* CPU time it spent in its access loop (timed and untimed parts) */
    int rc;
    char err[FL_ERR_LEN];
};

struct run_args {
    struct fl_region *r;
    struct fl_workload_opts o;
    uint64_t *order, n, unique;
    pthread_barrier_t start;
    atomic_bool setup_failed;
    uint64_t t_start, t_end; /* wall clock: barrier released, last access done */
    struct worker wk[FL_MAX_HANDLERS];
    /* merged results */
    struct fl_samples access_ns;
    uint64_t total_ns, first_ns, touched, bad_words, first_bad, map_count;
    long minflt;
    uint64_t cpu_ns; /* CPU time of the application threads in their access loops */
    uint64_t helpers_cpu_ns; /* of the strategy's threads or process over the same span (FL_CPU_UNKNOWN: unreadable) */
    int64_t tlb_before, tlb_after; /* /proc/interrupts TLB shootdowns, all CPUs; -1: not available */
    int fill_state; /* 0: not asked; 1: filled and verified; -1: filled, some bytes wrong */
    int source_state; /* write-random with resident_limit: 1 the source holds every write, -1 not, 0 not checked */
    uint64_t source_bad, source_first_bad;
    uint64_t fill_ns, fill_bad;
    int rc;
    char err[FL_ERR_LEN];
};

/* The timed accesses. Kept in its own function so that nothing live in the
 * caller is clobbered when a signal handler jumps back to the sigsetjmp. */
static void access_loop(struct worker *w, uint8_t *scratch, uint8_t *wbuf)
{
    struct fl_region *r = w->a->r;
    const uint64_t chunk = r->cfg.chunk_bytes, seed = r->cfg.seed, half = w->n / 2;
    const bool writes = w->a->o.w == FL_W_WRITE_RANDOM; /* one thread: its order is both passes */
    /* A strategy that cannot serve a fault (sigsegv) jumps back here. */
    if (sigsetjmp(w->ctx.abort_jmp, 1)) {
        w->ctx.jmp_armed = 0;
        return;
    }
    w->ctx.jmp_armed = 1;
    for (uint64_t i = 0; i < w->n; i++) {
        uint8_t *p = r->base + w->order[i] * chunk;
        const bool chosen = writes && fl_write_chosen(seed, w->order[i]), write = chosen && i < half;
        if (write)
            fl_fill(wbuf, chunk, seed ^ FL_WRITE_SEED_XOR, w->order[i] * chunk); /* untimed */
        uint64_t t0 = fl_now();
        memcpy(scratch, p, chunk); /* the access: faults the chunk in if lazy */
        if (write)
            memcpy(p, wbuf, chunk);
        uint64_t t1 = fl_now();
        if (atomic_load(&r->failed))
            break;
        fl_samples_add(&w->access_ns, t1 - t0);
        w->total_ns += t1 - t0;
        if (i == 0)
            w->first_ns = t1 - t0;
        w->touched++;
        atomic_store_explicit(&r->done[w->index].n, w->touched, memory_order_relaxed);
        uint64_t bad_at;
        uint64_t bad = fl_verify(scratch, chunk, chosen && i >= half ? seed ^ FL_WRITE_SEED_XOR : seed, w->order[i] * chunk, &bad_at);
        /* A chosen chunk may already hold the write before the first pass
         * writes it: an earlier run (a repetition) on the same server wrote
         * the same bytes there. The second pass and the source check do not
         * bend. */
        if (bad && chosen && i < half && !fl_verify(scratch, chunk, seed ^ FL_WRITE_SEED_XOR, w->order[i] * chunk, &bad_at))
            bad = 0;
        if (bad && !w->bad_words)
            w->first_bad = bad_at;
        w->bad_words += bad;
    }
    w->ctx.jmp_armed = 0;
}

/* wait_fill: once a region-filling prefetch has every chunk, check all of
 * them in place (a chunk not there would fault: served like any other). */
static void verify_filled(struct run_args *a, struct worker *w)
{
    struct fl_region *r = a->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (fl_pf_wait_filled(r->pf, 120000)) {
        if (!atomic_load(&r->failed))
            fl_region_fail(r, "wait_fill: the region was not filled within 120 s");
        return;
    }
    struct fl_pf_counts c;
    fl_pf_counts(r->pf, &c);
    a->fill_ns = c.filled_ns;
    if (sigsetjmp(w->ctx.abort_jmp, 1)) {
        w->ctx.jmp_armed = 0;
        return;
    }
    w->ctx.jmp_armed = 1;
    uint64_t bad = 0, at;
    for (uint64_t i = 0; i < r->nchunks && !atomic_load(&r->failed); i++)
        bad += fl_verify(r->base + i * chunk, chunk, r->cfg.seed, i * chunk, &at);
    w->ctx.jmp_armed = 0;
    a->fill_bad = bad;
    a->fill_state = bad ? -1 : 1;
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct run_args *a = w->a;
    struct fl_region *r = a->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    uint8_t *scratch = NULL, *wbuf = NULL;
    w->ctx.r = r;
    w->ctx.stats = &r->hstats[w->index];
    w->rc = -1;

    fl_pin_cpu(fl_cpu_for(r->cfg.cpus, false));
    if (r->source && r->source->ops->connect(r->source, &w->ctx.conn, w->err, sizeof w->err))
        goto ready;
    scratch = aligned_alloc(64, chunk);
    wbuf = a->o.w == FL_W_WRITE_RANDOM ? aligned_alloc(64, chunk) : NULL;
    if (!scratch || (a->o.w == FL_W_WRITE_RANDOM && !wbuf) || fl_samples_init(&w->access_ns, w->n)) {
        fl_errf(w->err, sizeof w->err, "out of memory for the workload");
        goto ready;
    }
    memset(scratch, 0, chunk); /* fault the scratch in before timing */
    memset(w->access_ns.v, 0, w->access_ns.cap * sizeof *w->access_ns.v); /* and the samples: only the region's faults count */
    fl_tls_wctx = &w->ctx;
    /* Thread 0 prepares (eager copies the region) before anyone starts. */
    if (w->index == 0 && r->ops->before_workload && r->ops->before_workload(r, w->err, sizeof w->err))
        goto ready;
    w->rc = 0;
ready:
    if (w->rc)
        atomic_store(&a->setup_failed, true);
    pthread_barrier_wait(&a->start);
    if (!w->rc && !atomic_load(&a->setup_failed)) {
        if (w->index == 0)
            a->t_start = fl_now();
        long flt0 = fl_thread_minflt();
        uint64_t cpu0 = fl_thread_cpu_ns();
        access_loop(w, scratch, wbuf);
        w->cpu_ns = fl_thread_cpu_ns() - cpu0;
        w->minflt = fl_thread_minflt() - flt0;
        if (w->index == 0 && a->o.wait_fill && !atomic_load(&r->failed))
            verify_filled(a, w);
    }
    fl_tls_wctx = NULL;
    free(scratch);
    free(wbuf);
    return NULL;
}

/* Runs the workers; afterwards the connections are still open (the caller
 * closes them once no handler can touch them). */
static void run_workers(struct run_args *a)
{
    struct fl_region *r = a->r;
    int T = a->o.app_threads, started = 0;
    /* The strategy's threads are idle until the first access and still alive
     * after the last (quiesce stops them later): read their clocks around. */
    uint64_t helpers0 = r->ops->helpers_cpu_ns ? r->ops->helpers_cpu_ns(r) : 0;
    a->rc = -1;
    if (pthread_barrier_init(&a->start, NULL, (unsigned)T)) {
        fl_errf(a->err, sizeof a->err, "cannot set up the workload threads");
        return;
    }
    for (int t = 0; t < T; t++) {
        struct worker *w = &a->wk[t];
        w->a = a;
        w->index = t;
        w->order = a->order + a->n * (uint64_t)t / (uint64_t)T;
        w->n = a->n * (uint64_t)(t + 1) / (uint64_t)T - a->n * (uint64_t)t / (uint64_t)T;
        if (!r->hstats[t].fetch_ns.v &&
            (fl_samples_init(&r->hstats[t].fetch_ns, r->nchunks) || fl_samples_init(&r->hstats[t].install_ns, r->nchunks))) {
            fl_errf(a->err, sizeof a->err, "out of memory for statistics");
            break;
        }
        int e = pthread_create(&w->thread, NULL, worker_main, w);
        if (e) {
            fl_errf(a->err, sizeof a->err, "cannot start a workload thread: %s", strerror(e));
            break;
        }
        w->started = true;
        started++;
    }
    if (started < T) {
        /* The barrier waits for T threads: stand in for the missing ones. */
        atomic_store(&a->setup_failed, true);
        for (int t = started; t < T; t++)
            pthread_barrier_wait(&a->start);
    }
    for (int t = 0; t < T; t++)
        if (a->wk[t].started)
            pthread_join(a->wk[t].thread, NULL);
    a->t_end = fl_now();
    uint64_t helpers1 = r->ops->helpers_cpu_ns ? r->ops->helpers_cpu_ns(r) : 0;
    a->helpers_cpu_ns = helpers0 == FL_CPU_UNKNOWN || helpers1 == FL_CPU_UNKNOWN ? FL_CPU_UNKNOWN : helpers1 - helpers0;
    pthread_barrier_destroy(&a->start);
    if (r->nhstats < T)
        r->nhstats = T;
    if (started < T)
        return;
    for (int t = 0; t < T; t++)
        if (a->wk[t].rc) {
            fl_errf(a->err, sizeof a->err, "%s", a->wk[t].err);
            return;
        }
    a->rc = 0;
}

/* Merge the workers: samples, counts; time is the slowest thread's access time. */
static int merge_workers(struct run_args *a)
{
    int T = a->o.app_threads;
    if (fl_samples_init(&a->access_ns, a->n))
        return -1;
    for (int t = 0; t < T; t++) {
        struct worker *w = &a->wk[t];
        for (uint64_t k = 0; k < w->access_ns.n; k++)
            fl_samples_add(&a->access_ns, w->access_ns.v[k]);
        if (w->total_ns > a->total_ns)
            a->total_ns = w->total_ns;
        a->touched += w->touched;
        a->minflt += w->minflt;
        a->cpu_ns += w->cpu_ns;
        if (w->bad_words && !a->bad_words)
            a->first_bad = w->first_bad;
        a->bad_words += w->bad_words;
    }
    a->first_ns = a->wk[0].first_ns;
    return 0;
}

/* resident_limit: after the accesses, push what is still dirty, so the
 * source holds every write (written-back chunks count in writebacks). */
static void resident_flush(struct run_args *a)
{
    char cause[FL_ERR_LEN];
    if (fl_resident_flush(a->r->resident, cause, sizeof cause)) {
        char msg[FL_ERR_LEN];
        snprintf(msg, sizeof msg, "resident limit: final write-back failed: %.180s", cause);
        fl_region_fail(a->r, msg);
    }
}

/* write-random under a resident limit: read the whole region back from the
 * source on a fresh connection and compare with what was written, so a
 * write lost on its way out of a dropped chunk cannot pass. */
static void verify_source(struct run_args *a)
{
    struct fl_region *r = a->r;
    const uint64_t chunk = r->cfg.chunk_bytes, seed = r->cfg.seed;
    struct fl_conn *c = NULL;
    char cause[FL_ERR_LEN];
    uint8_t *buf = aligned_alloc(64, chunk);
    a->source_state = -1;
    if (!buf || r->source->ops->connect(r->source, &c, cause, sizeof cause)) {
        fl_region_fail(r, "write-random: cannot read the source back to verify it");
        free(buf);
        return;
    }
    uint64_t bad = 0, at;
    for (uint64_t i = 0; i < r->nchunks; i++) {
        if (r->source->ops->read(c, i * chunk, buf, chunk, cause, sizeof cause)) {
            char msg[FL_ERR_LEN];
            snprintf(msg, sizeof msg, "write-random: reading the source back: %.180s", cause);
            fl_region_fail(r, msg);
            break;
        }
        uint64_t b = fl_verify(buf, chunk, fl_write_chosen(seed, i) ? seed ^ FL_WRITE_SEED_XOR : seed, i * chunk, &at);
        if (b && !a->source_bad)
            a->source_first_bad = at;
        bad += b;
    }
    r->source->ops->disconnect(c);
    free(buf);
    a->source_bad = bad;
    a->source_state = bad ? -1 : 1;
}

static uint64_t count_mappings(void)
{
    FILE *f = fopen("/proc/self/maps", "re");
    uint64_t n = 0;
    if (!f)
        return 0;
    int ch;
    while ((ch = getc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

/* TLB shootdown IPIs received so far, summed over CPUs (x86's "TLB:" row of
 * /proc/interrupts; machine-wide, so other processes count too): -1 where the
 * row does not exist. Read around the workload to see what taking permissions
 * or pages away costs the other CPUs as threads are added (opening a chunk,
 * as the pull strategies do, needs no shootdown). */
static int64_t tlb_shootdowns(void)
{
    FILE *f = fopen("/proc/interrupts", "re");
    if (!f)
        return -1;
    char line[4096];
    int64_t sum = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (strncmp(p, "TLB:", 4))
            continue;
        sum = 0;
        char *end;
        for (p += 4;; p = end) {
            unsigned long long v = strtoull(p, &end, 10);
            if (end == p)
                break;
            sum += (int64_t)v;
        }
        break;
    }
    fclose(f);
    return sum;
}

/* ---- JSON output ------------------------------------------------------------ */
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
    struct fl_jbuf j = {.p = out, .len = outlen};
    uint64_t faults = 0, dups = 0, fetched = 0, fetch_p50, install_p50, waits = 0, triggers = 0, span = 0;
    for (int i = 0; i < r->nhstats; i++) {
        faults += r->hstats[i].faults;
        dups += r->hstats[i].duplicates;
        fetched += r->hstats[i].bytes_fetched;
        waits += r->hstats[i].inflight_waits;
        triggers += r->hstats[i].trigger_faults;
        span += r->hstats[i].span_chunks;
    }
    struct fl_pf_counts pf;
    fl_pf_counts(r->pf, &pf);
    if (r->pf_counts)
        pf = *r->pf_counts;
    fetched += pf.bytes;
    merged_quantiles(r, 0, &fetch_p50);
    merged_quantiles(r, 1, &install_p50);
    uint64_t total = a->total_ns + r->prefill_ns;
    uint64_t bytes_read = a->touched * r->cfg.chunk_bytes;
    double mibps = total ? (double)bytes_read / (1 << 20) / ((double)total / 1e9) : 0;
    fl_jput(&j, "{\"strategy\":\"%s\",\"scenario\":\"%s\",\"source\":\"%s\",", r->ops->name, fl_workload_name(a->o.w),
            r->source        ? r->source->ops->name
            : uses_source(r) ? r->cfg.source
                             : "none");
    fl_jput(&j, "\"region_bytes\":%llu,\"chunk_bytes\":%llu,\"cpus\":\"%s\",\"handler_threads\":%d,",
            (unsigned long long)r->cfg.region_bytes, (unsigned long long)r->cfg.chunk_bytes, fl_cpus_name(r->cfg.cpus),
            r->cfg.handler_threads);
    fl_jput(&j, "\"faults\":%llu,\"duplicate_faults\":%llu,\"bytes_fetched\":%llu,\"chunks_touched\":%llu,\"bytes_read\":%llu,",
            (unsigned long long)faults, (unsigned long long)dups, (unsigned long long)(fetched + (r->prefill_ns ? r->cfg.region_bytes : 0)),
            (unsigned long long)a->touched, (unsigned long long)bytes_read);
    fl_jput(&j, "\"first_access_ns\":%llu,\"total_ns\":%llu,\"throughput_mibps\":%.3f,\"prefill_ns\":%llu,\"setup_ns\":%llu,",
            (unsigned long long)(a->first_ns + r->prefill_ns), (unsigned long long)total, mibps, (unsigned long long)r->prefill_ns,
            (unsigned long long)r->setup_ns);
    fl_jput(&j, "\"fault_ns_p50\":%llu,\"fault_ns_p99\":%llu,\"fault_ns_max\":%llu,\"fault_ns_mean\":%.1f,",
            (unsigned long long)fl_samples_quantile(&a->access_ns, 0.5), (unsigned long long)fl_samples_quantile(&a->access_ns, 0.99),
            (unsigned long long)fl_samples_quantile(&a->access_ns, 1.0), a->touched ? (double)a->total_ns / (double)a->touched : 0.0);
    fl_jput(&j, "\"fault_ns_cdf\":\"");
    for (int q = 0; q <= 20; q++)
        fl_jput(&j, "%s%llu", q ? ";" : "", (unsigned long long)fl_samples_quantile(&a->access_ns, q / 20.0));
    /* The same distribution in 1 % steps, for CDF figures that should not interpolate between 21 points. */
    fl_jput(&j, "\",\"fault_ns_cdf_fine\":\"");
    for (int q = 0; q <= FL_CDF_FINE_STEPS; q++)
        fl_jput(&j, "%s%llu", q ? ";" : "", (unsigned long long)fl_samples_quantile(&a->access_ns, (double)q / FL_CDF_FINE_STEPS));
    fl_jput(&j, "\",\"fetch_ns_p50\":%llu,\"install_ns_p50\":%llu,", (unsigned long long)fetch_p50, (unsigned long long)install_p50);
    fl_jput(&j, "\"uffd_path\":\"%s\",", r->uffd_path ? r->uffd_path : "unused");
    /* Beyond the thesis: prefetch, threads, access patterns, the VMA limit. */
    fl_jput(&j, "\"prefetch\":\"%s\",\"depth\":%d,\"app_threads\":%d,\"prefetched\":%llu,\"prefetch_requests\":%llu,",
            r->ops->lazy ? r->cfg.prefetch : "none", r->cfg.depth, a->o.app_threads, (unsigned long long)pf.prefetched,
            (unsigned long long)pf.requests);
    fl_jput(&j, "\"pf_conns\":%d,\"pf_installer\":%s,\"uffd_install\":\"%s\",\"handler\":\"%s\",", pf.conns,
            pf.installer ? "true" : "false", r->ops != &fl_strategy_uffd ? "none" : fl_uffd_install_name(r->cfg.uffd_install),
            r->ops != &fl_strategy_uffd ? "none" : fl_handler_name(r->cfg.handler));
    fl_jput(&j, "\"inflight_waits\":%llu,\"trigger_faults\":%llu,\"span_chunks\":%llu,\"vma_span\":%llu,\"map_count\":%llu,",
            (unsigned long long)waits, (unsigned long long)triggers, (unsigned long long)span,
            (unsigned long long)(r->vma_span ? r->vma_span : 1), (unsigned long long)a->map_count);
    if (a->tlb_before >= 0 && a->tlb_after >= a->tlb_before)
        fl_jput(&j, "\"tlb_shootdowns\":%lld,", (long long)(a->tlb_after - a->tlb_before));
    else
        fl_jput(&j, "\"tlb_shootdowns\":null,");
    fl_jput(&j, "\"app_minor_faults\":%ld,", a->minflt);
    /* The client side's CPU time while the application threads ran: theirs,
     * and the strategy's own threads' or handler process's. */
    uint64_t client_cpu = fl_cpu_add(a->cpu_ns, a->helpers_cpu_ns);
    if (client_cpu == FL_CPU_UNKNOWN)
        fl_jput(&j, "\"client_cpu_ns\":null,");
    else
        fl_jput(&j, "\"client_cpu_ns\":%llu,", (unsigned long long)client_cpu);
    fl_jput(&j, "\"unique_chunks\":%llu,\"wall_ns\":%llu,\"huge\":\"%s\",", (unsigned long long)a->unique,
            (unsigned long long)(a->t_end - a->t_start), r->cfg.huge);
    if (a->o.w == FL_W_READ_ZIPF)
        fl_jput(&j, "\"zipf_s\":%g,", a->o.zipf_s);
    else
        fl_jput(&j, "\"zipf_s\":null,");
    if (a->o.w == FL_W_READ_SPARSE)
        fl_jput(&j, "\"touch_fraction\":%g,", a->o.touch_fraction);
    else
        fl_jput(&j, "\"touch_fraction\":null,");
    if (a->fill_state)
        fl_jput(&j, "\"fill_ns\":%llu,\"fill_verified\":%s,\"chunks_present\":%llu,", (unsigned long long)a->fill_ns,
                a->fill_state > 0 ? "true" : "false", (unsigned long long)fl_chunks_count(r->chunks, FL_CHUNK_PRESENT));
    if (r->resident) {
        struct fl_resident_counts rc;
        fl_resident_counts(r->resident, &rc);
        fl_jput(&j, "\"resident_limit\":%llu,\"evict\":\"%s\",\"evictions\":%llu,\"refetches\":%llu,\"writebacks\":%llu,",
                (unsigned long long)rc.limit_bytes, r->cfg.evict, (unsigned long long)rc.evictions, (unsigned long long)rc.refetches,
                (unsigned long long)rc.writebacks);
        fl_jput(&j, "\"max_resident_bytes\":%llu,\"reref_faults\":%llu,", (unsigned long long)rc.max_resident_bytes,
                (unsigned long long)rc.reref_faults);
    }
    if (a->source_state)
        fl_jput(&j, "\"source_verified\":%s,\"source_bad_words\":%llu,", a->source_state > 0 ? "true" : "false",
                (unsigned long long)a->source_bad);
    fl_jput(&j, "\"verified\":%s,\"bad_words\":%llu", a->bad_words || a->source_state < 0 || !a->touched ? "false" : "true",
            (unsigned long long)a->bad_words);
    if (a->bad_words)
        fl_jput(&j, ",\"first_bad_offset\":%llu", (unsigned long long)a->first_bad);
    fl_jput(&j, "}");
}

uint64_t fl_region_progress(fl_region *r, uint64_t *planned)
{
    uint64_t done = 0;
    for (int t = 0; t < FL_MAX_HANDLERS; t++)
        done += atomic_load_explicit(&r->done[t].n, memory_order_relaxed);
    *planned = atomic_load(&r->planned);
    return done;
}

int fl_run(fl_region *r, const char *run_spec, char *out, size_t outlen)
{
    struct run_args *a = calloc(1, sizeof *a);
    if (!a) {
        fl_errf(out, outlen, "out of memory");
        return -1;
    }
    a->r = r;
    if (fl_workload_parse(run_spec, &a->o, out, outlen)) {
        free(a);
        return -1;
    }
    if (a->o.wait_fill && r->cfg.handler == FL_HANDLER_PROCESS) {
        fl_errf(out, outlen,
                "wait_fill=1 waits on the prefetch engine, which handler=process runs in the handler process: use handler=thread");
        free(a);
        return -1;
    }
    if (a->o.wait_fill && !fl_pf_fills_region(r->pf)) {
        fl_errf(out, outlen, "wait_fill=1 needs a region-filling prefetch (prefetch=background or criu) on uffd or sigsegv");
        free(a);
        return -1;
    }
    if (a->o.wait_fill && r->resident) {
        fl_errf(out, outlen, "wait_fill=1 waits for every chunk to be resident, which resident_limit forbids");
        free(a);
        return -1;
    }
    if (r->ran) {
        fl_errf(out, outlen, "a region runs once (its faults are first touches): create a fresh one");
        free(a);
        return -1;
    }
    r->ran = true;
    a->order = fl_workload_order(&a->o, r->nchunks, &a->n);
    if (!a->order || a->n < (uint64_t)a->o.app_threads) {
        fl_errf(out, outlen,
                a->order ? "app_threads=%d is more than the %llu chunks the workload touches" : "out of memory for the workload",
                a->o.app_threads, (unsigned long long)a->n);
        free(a->order);
        free(a);
        return -1;
    }
    a->unique = fl_workload_unique(a->order, a->n, r->nchunks);
    atomic_store(&r->planned, a->n);
    a->tlb_before = tlb_shootdowns();
    run_workers(a);
    a->tlb_after = tlb_shootdowns();
    if (r->ops->lazy)
        a->map_count = count_mappings(); /* before a failed sigsegv run merges its mappings back */
    if (r->ops->after_workload)
        r->ops->after_workload(r);
    if (r->ops->quiesce)
        r->ops->quiesce(r);
    if (r->resident && !atomic_load(&r->failed) && !a->rc)
        resident_flush(a); /* after quiesce: no prefetch, no handler still marking */
    if (r->resident && a->o.w == FL_W_WRITE_RANDOM && !atomic_load(&r->failed) && !a->rc)
        verify_source(a);
    for (int t = 0; t < a->o.app_threads; t++) {
        if (a->wk[t].ctx.conn)
            r->source->ops->disconnect(a->wk[t].ctx.conn);
        a->wk[t].ctx.conn = NULL;
    }
    if (!a->rc && atomic_load(&r->failed)) {
        while (atomic_load(&r->failed) != 2)
            ; /* the failing thread is still writing its message */
        fl_errf(a->err, sizeof a->err, "%s", r->fail_msg);
        a->rc = -1;
    }
    if (!a->rc && merge_workers(a)) {
        fl_errf(a->err, sizeof a->err, "out of memory for the statistics");
        a->rc = -1;
    }
    int rc = a->rc;
    if (rc)
        fl_errf(out, outlen, "%s", a->err);
    else
        write_json(r, a, out, outlen);
    fl_samples_free(&a->access_ns);
    for (int t = 0; t < a->o.app_threads; t++)
        fl_samples_free(&a->wk[t].access_ns);
    free(a->order);
    free(a);
    return rc;
}
