/* The migrate scenario's two native halves; harness/migrate.ts runs each in
 * its own process and relays the cut-over between them.
 *
 * fl_migrate_source: a writer thread keeps writing its pattern (one interval
 * every period_ms) while pre-copy rounds push to the chunk server: round 0 the
 * whole region, then the tracker's dirty chunks. Each push is one pipelined
 * batch (contiguous dirty chunks merged into one WRITE, up to push_depth
 * WRITEs in flight: source write_runs), so a round costs its bytes over the
 * bandwidth plus about one round trip. After each collect, migrate_plan.c
 * decides from the measured bandwidth, round trip and dirty bytes whether the
 * stop-and-copy would fit downtime_limit_ms (QEMU's rule), or max_rounds
 * pushes were made. Cut-over: the writer is stopped (t_stop), the last dirty
 * chunks are pushed the same pipelined way (t_cutover), and the function
 * returns so the caller can start the destination. mode=postcopy stops after
 * one writer interval and pushes nothing; mode=hybrid after postcopy_after
 * rounds. In both the source serves its own memory over NBD (announced on
 * out_fd before the clock starts) until the caller says "done" on go_fd, and
 * the destination's region pulls from that server instead of the store.
 *
 * fl_migrate_dest: on a lazy region (uffd or sigsegv) whose source is that
 * chunk server, the resumed application's accesses (the chunks the writer's
 * next interval would touch) are served on demand while the rest is pulled:
 * by the region's prefetch engine when its policy fills the region
 * (prefetch=background or criu: pipelined, faults jumping the queue), else by
 * bg_threads touching every chunk in order (one fault per chunk). Afterwards the
 * source's final contents are rebuilt by replaying its writes (fl_fill, then
 * intervals_written intervals: the writer is deterministic) and compared with
 * the destination's memory chunk by chunk. */
#include "trackers/tracker.h"
#include "scenarios/writer.h"
#include "scenarios/migrate_plan.h"
#include "server/nbd_server.h"
#include "prefetch/prefetch.h"
#include "core/jbuf.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- options ------------------------------------------------------------------ */
#define FL_MIG_MAX_LISTED 64 /* rounds whose numbers the result lists */
struct mopts {
    struct fl_write_opts wo;
    char tracker[32];
    enum { MODE_PRECOPY, MODE_POSTCOPY, MODE_HYBRID } mode;
    uint64_t period_ms, max_rounds, downtime_limit_ms, push_depth, intervals, bg_threads;
    uint64_t postcopy_after, serve_rtt_us; /* hybrid's switch; the RTT the source's own server holds its answers (post-copy) */
    int64_t out_fd, ready_fd, go_fd; /* cut-over signalling over pipes, -1: none */
};

struct mspec {
    struct mopts *o;
    char *rest; /* the region keys, for fl_config_parse */
    size_t restlen;
};

/* One key of a migrate spec: a write option, a migrate key, or a region key passed on. */
static int migrate_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct mspec *p = ctx;
    struct mopts *o = p->o;
    int taken = 0;
    if (fl_write_opts_take(k, v, &o->wo, &taken, err, errlen))
        return -1;
    if (taken)
        return 0;
    static const char *const nums[] = {"period_ms", "max_rounds", "downtime_limit_ms", "push_depth",  "intervals", "bg_threads", "out_fd",
                                       "ready_fd",  "go_fd",      "postcopy_after",    "serve_rtt_us"};
    uint64_t *dst[] = {&o->period_ms,         &o->max_rounds,     &o->downtime_limit_ms,  &o->push_depth,
                       &o->intervals,         &o->bg_threads,     (uint64_t *)&o->out_fd, (uint64_t *)&o->ready_fd,
                       (uint64_t *)&o->go_fd, &o->postcopy_after, &o->serve_rtt_us};
    for (int i = 0; i < 11; i++) {
        if (strcmp(k, nums[i]))
            continue;
        if (fl_parse_u64(v, 0, UINT64_MAX, dst[i])) {
            fl_errf(err, errlen, "%s must be a whole number, got '%s'", k, v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "mode")) {
        if (!strcmp(v, "precopy"))
            o->mode = MODE_PRECOPY;
        else if (!strcmp(v, "postcopy"))
            o->mode = MODE_POSTCOPY;
        else if (!strcmp(v, "hybrid"))
            o->mode = MODE_HYBRID;
        else {
            fl_errf(err, errlen, "mode must be precopy, postcopy or hybrid, got '%s'", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "tracker") && strlen(v) < sizeof o->tracker) {
        strcpy(o->tracker, v);
        return 0;
    }
    return fl_spec_pass(p->rest, p->restlen, k, v, err, errlen);
}

/* Take the migrate keys out of spec; the rest (region keys) goes to rest. */
static int parse(const char *spec, struct mopts *o, char *rest, size_t restlen, char *err, size_t errlen)
{
    *o = (struct mopts){.wo = {FL_PAT_HOT, 0.01, 4096},
                        .period_ms = 10,
                        .max_rounds = 8,
                        .downtime_limit_ms = 300, /* QEMU's default downtime-limit */
                        .push_depth = 2048, /* WRITEs in flight: a round of scattered chunks in one round trip */
                        .postcopy_after = 1,
                        .intervals = 0,
                        .bg_threads = 2,
                        .out_fd = -1,
                        .ready_fd = -1,
                        .go_fd = -1};
    strcpy(o->tracker, "uffd-wp");
    rest[0] = 0;
    struct mspec p = {.o = o, .rest = rest, .restlen = restlen};
    if (fl_spec_each(spec, "migrate spec", migrate_key, &p, err, errlen))
        return -1;
    if (o->bg_threads < 1 || o->bg_threads > 64 || o->max_rounds < 1 || o->max_rounds > FL_MIG_MAX_LISTED) {
        fl_errf(err, errlen, "bg_threads must be 1 to 64 and max_rounds 1 to %d", FL_MIG_MAX_LISTED);
        return -1;
    }
    if (o->push_depth < 1 || o->push_depth > 2048 || o->downtime_limit_ms > 3600000) {
        fl_errf(err, errlen, "push_depth must be 1 to 2048 and downtime_limit_ms at most 3600000");
        return -1;
    }
    if (o->postcopy_after < 1 || o->postcopy_after > FL_MIG_MAX_LISTED || o->serve_rtt_us > 10000000) {
        fl_errf(err, errlen, "postcopy_after must be 1 to %d and serve_rtt_us at most 10000000", FL_MIG_MAX_LISTED);
        return -1;
    }
    return 0;
}

/* ---- cut-over signalling: one line on a pipe, straight from C, so no event
 * loop sits between the source's cut-over and the destination's go ------- */
static int put_line(int fd, const char *text, char *err, size_t errlen)
{
    size_t len = strlen(text), done = 0;
    while (done <= len) {
        const char *p = done < len ? text + done : "\n";
        ssize_t k = write(fd, p, done < len ? len - done : 1);
        if (k > 0) {
            done += (size_t)k;
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            poll(&pf, 1, 100);
        } else {
            fl_errf(err, errlen, "cannot write to fd %d: %s", fd, strerror(errno));
            return -1;
        }
    }
    return 0;
}

/* Read one line (up to len-1 bytes) from fd, byte by byte: nothing past it is consumed. */
static int get_line(int fd, char *buf, size_t len, char *err, size_t errlen)
{
    size_t n = 0;
    while (n + 1 < len) {
        ssize_t k = read(fd, buf + n, 1);
        if (k == 1 && buf[n] == '\n')
            break;
        if (k == 1) {
            n++;
        } else if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLIN};
            poll(&pf, 1, 100);
        } else {
            fl_errf(err, errlen, "no cut-over line on fd %d: %s", fd, k ? strerror(errno) : "end of file");
            return -1;
        }
    }
    buf[n] = 0;
    return 0;
}

/* ---- source ---------------------------------------------------------------------- */
struct msrc {
    struct fl_config cfg;
    struct mopts o;
    struct fl_writer w;
    uint8_t *base;
    uint64_t nchunks, *idx, *offs;
    atomic_bool stop;
    atomic_ulong intervals_done;
    struct fl_source *src;
    struct fl_conn *conn;
    fl_nbd_server *srv; /* post-copy and hybrid: this source serving its own memory */
    uint64_t *tail, *merged, *run_off, *run_len; /* nchunks each: the cut-over's lists, a push's runs */
    uint64_t bytes_pushed, requests;
};

static void *writer_main(void *arg)
{
    struct msrc *m = arg;
    fl_pin_cpu(fl_cpu_for(m->cfg.cpus, false));
    uint64_t t0 = fl_now();
    for (uint64_t i = 0; !atomic_load(&m->stop); i++) {
        fl_writer_plan(&m->w, i, m->offs);
        for (uint64_t j = 0; j < m->w.per_interval; j++)
            fl_writer_store(&m->w, m->base, m->offs[j], i, j);
        atomic_store(&m->intervals_done, i + 1);
        fl_sleep_until_ns(t0 + (i + 1) * m->o.period_ms * 1000000ull);
    }
    return NULL;
}

/* Push chunks idx[0..n) (ascending): contiguous ones merged into one run,
 * all runs in one pipelined batch where the source can (tcp), else run by run. */
static int push(struct msrc *m, uint64_t n, char *err, size_t errlen)
{
    const uint64_t chunk = m->cfg.chunk_bytes;
    uint64_t runs = 0;
    for (uint64_t i = 0; i < n;) {
        uint64_t j = i + 1;
        while (j < n && m->idx[j] == m->idx[j - 1] + 1)
            j++;
        m->run_off[runs] = m->idx[i] * chunk;
        m->run_len[runs++] = (j - i) * chunk;
        i = j;
    }
    char cause[FL_ERR_LEN];
    const struct fl_source_ops *ops = m->src->ops;
    int rc = 0;
    if (ops->write_runs) {
        rc = ops->write_runs(m->conn, m->base, m->run_off, m->run_len, runs, (int)m->o.push_depth, cause, sizeof cause);
    } else {
        for (uint64_t r = 0; r < runs && !rc; r++)
            rc = ops->write(m->conn, m->run_off[r], m->base + m->run_off[r], m->run_len[r], cause, sizeof cause);
    }
    if (rc) {
        fl_errf(err, errlen, "push of %llu chunks in %llu runs failed: %s", (unsigned long long)n, (unsigned long long)runs, cause);
        return -1;
    }
    m->bytes_pushed += n * chunk;
    m->requests += runs;
    return 0;
}

/* Post-copy and hybrid: serve this memory over NBD (loopback, any free port,
 * answers held serve_rtt_us as the chunk server holds its), announce the port
 * on out_fd, and wait for "start" on go_fd: the caller points the
 * destination's region at this server before the migration's clock starts. */
static int start_serving(struct msrc *m, char *err, size_t errlen)
{
    char spec[256], line[32], cause[FL_ERR_LEN];
    snprintf(spec, sizeof spec, "listen=127.0.0.1 port=0 region=%llu seed=%llu rtt_us=%llu log_fd=-1",
             (unsigned long long)m->cfg.region_bytes, (unsigned long long)m->cfg.seed, (unsigned long long)m->o.serve_rtt_us);
    if (m->cfg.export_name[0] && strlen(m->cfg.export_name) < 200)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), " export=%s", m->cfg.export_name);
    if (!(m->srv = nbd_start_over(spec, m->base, cause, sizeof cause))) {
        fl_errf(err, errlen, "migrate source: cannot serve its memory: %s", cause);
        return -1;
    }
    snprintf(line, sizeof line, "{\"serving\":%d}", fl_nbd_port(m->srv));
    if (put_line((int)m->o.out_fd, line, err, errlen) || get_line((int)m->o.go_fd, line, sizeof line, err, errlen))
        return -1;
    if (strcmp(line, "start")) {
        fl_errf(err, errlen, "migrate source: expected 'start', got '%s'", line);
        return -1;
    }
    return 0;
}

/* A ';'-separated list of the first k values. */
static void put_list(struct fl_jbuf *j, const char *key, const uint64_t *v, uint64_t k)
{
    fl_jput(j, "\"%s\":\"", key);
    for (uint64_t i = 0; i < k; i++)
        fl_jput(j, "%s%llu", i ? ";" : "", (unsigned long long)v[i]);
    fl_jput(j, "\",");
}

static int source_run(struct msrc *m, struct fl_jbuf *j, char *err, size_t errlen)
{
    const uint64_t len = m->cfg.region_bytes, chunk = m->cfg.chunk_bytes;
    struct fl_tracker *tr = NULL;
    pthread_t wt;
    bool writing = false;
    int rc = -1;
    uint64_t rounds = 0, n = 0, t_start = 0, t_stop = 0, t_cut = 0;
    uint64_t dirty[FL_MIG_MAX_LISTED], push_ns[FL_MIG_MAX_LISTED], collect_ns[FL_MIG_MAX_LISTED];
    uint64_t rtt = 0, bw = 0, dirty_bps = 0, expected = 0, final_collect_ns = 0;
    enum fl_mig_stop why = FL_MIG_GO_ON;
    m->src = fl_source_tcp_create(&m->cfg, err, errlen);
    if (!m->src || m->src->ops->connect(m->src, &m->conn, err, errlen))
        goto out;
    /* The round trip the stop rule counts: measured before the clock starts. */
    rtt = m->src->ops->ping_ns(m->conn, 5, NULL);
    void *b = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) {
        fl_errf(err, errlen, "cannot map %llu bytes: %s", (unsigned long long)len, strerror(errno));
        goto out;
    }
    m->base = b;
    madvise(m->base, len, MADV_NOHUGEPAGE);
    fl_fill(m->base, len, m->cfg.seed ^ FL_MIGRATE_SALT, 0);
    tr = fl_tracker_create(m->o.tracker, m->base, len, chunk, false, fl_cpu_for(m->cfg.cpus, true), err, errlen);
    if (!tr)
        goto out;
    const bool serving = m->o.mode != MODE_PRECOPY;
    if (serving && start_serving(m, err, errlen))
        goto out;
    int e = pthread_create(&wt, NULL, writer_main, m);
    if (e) {
        fl_errf(err, errlen, "cannot start the writer thread: %s", strerror(e));
        goto out;
    }
    writing = true;
    t_start = fl_now();
    for (uint64_t i = 0; i < m->nchunks; i++) /* round 0: everything */
        m->idx[i] = i;
    n = m->nchunks;
    uint64_t pending = 0; /* collected, small enough to leave for the cut-over */
    uint64_t sent = 0, sending_ns = 0, t_prev = t_start;
    if (m->o.mode == MODE_POSTCOPY) { /* no rounds: stop once the writer has written one interval */
        why = FL_MIG_POSTCOPY;
        while (!atomic_load(&m->intervals_done))
            usleep(100);
    }
    while (why == FL_MIG_GO_ON) {
        uint64_t p0 = fl_now();
        if (push(m, n, err, errlen))
            goto out;
        uint64_t p1 = fl_now(), c1;
        dirty[rounds] = n;
        push_ns[rounds] = p1 - p0;
        /* Bandwidth: bytes over the time past the batch's one round trip. */
        sent += n * chunk;
        sending_ns += p1 - p0 > rtt + (p1 - p0) / 10 ? p1 - p0 - rtt : (p1 - p0) / 10;
        bw = sending_ns ? (uint64_t)((unsigned __int128)sent * 1000000000u / sending_ns) : 0;
        if (fl_tracker_collect(tr, m->idx, &n, err, errlen))
            goto out;
        c1 = fl_now();
        collect_ns[rounds++] = c1 - p1;
        dirty_bps = (uint64_t)((unsigned __int128)n * chunk * 1000000000u / (c1 - t_prev + 1));
        t_prev = c1;
        struct fl_mig_measure me = {.dirty_bytes = n * chunk, .bytes_per_s = bw, .rtt_ns = rtt, .collect_ns = c1 - p1};
        expected = fl_mig_expected_downtime_ns(&me);
        why = fl_mig_decide(&me, rounds, m->o.max_rounds, m->o.downtime_limit_ms * 1000000ull,
                            m->o.mode == MODE_HYBRID ? m->o.postcopy_after : 0);
    }
    pending = n;
    /* Cut-over: stop the writer, then push what is still dirty (the chunks
     * left pending plus the final collect, merged into idx). */
    atomic_store(&m->stop, true);
    pthread_join(wt, NULL);
    writing = false;
    t_stop = fl_now();
    uint64_t more = 0, *tail = m->tail, k = 0;
    if (serving) /* post-copy: nothing pushed now; the destination's pulls reach this memory */
        pending = 0;
    else if (fl_tracker_collect(tr, tail, &more, err, errlen))
        goto out;
    final_collect_ns = fl_now() - t_stop;
    /* Merge the two ascending lists (without duplicates) into merged, then idx. */
    for (uint64_t a = 0, c = 0; a < pending || c < more;) {
        uint64_t x = c >= more || (a < pending && m->idx[a] < tail[c]) ? m->idx[a++] : tail[c++];
        if (!k || m->merged[k - 1] != x)
            m->merged[k++] = x;
    }
    memcpy(m->idx, m->merged, k * sizeof *m->idx);
    if (push(m, k, err, errlen))
        goto out;
    t_cut = fl_now();
    uint64_t done = atomic_load(&m->intervals_done);
    static const char *const modes[] = {"precopy", "postcopy", "hybrid"};
    fl_jput(j, "{\"role\":\"source\",\"mode\":\"%s\",\"postcopy_after\":%llu,\"serving_port\":%d,", modes[m->o.mode],
            (unsigned long long)m->o.postcopy_after, serving ? fl_nbd_port(m->srv) : 0);
    fl_jput(j, "\"tracker\":\"%s\",\"pattern\":\"%s\",\"write_fraction\":%g,\"write_bytes\":%llu,", m->o.tracker,
            fl_pattern_name(m->o.wo.pattern), m->o.wo.fraction, (unsigned long long)m->w.write_bytes);
    fl_jput(j, "\"t_start_ns\":%llu,\"t_stop_ns\":%llu,\"t_cutover_ns\":%llu,\"precopy_ns\":%llu,\"final_push_ns\":%llu,",
            (unsigned long long)t_start, (unsigned long long)t_stop, (unsigned long long)t_cut, (unsigned long long)(t_stop - t_start),
            (unsigned long long)(t_cut - t_stop));
    fl_jput(j, "\"precopy_rounds\":%llu,", (unsigned long long)rounds);
    put_list(j, "round_dirty_chunks", dirty, rounds);
    put_list(j, "round_push_ns", push_ns, rounds);
    put_list(j, "round_collect_ns", collect_ns, rounds);
    fl_jput(j, "\"stop_reason\":\"%s\",\"downtime_limit_ms\":%llu,\"max_rounds\":%llu,\"push_depth\":%llu,", fl_mig_stop_name(why),
            (unsigned long long)m->o.downtime_limit_ms, (unsigned long long)m->o.max_rounds, (unsigned long long)m->o.push_depth);
    fl_jput(j, "\"rtt_ns\":%llu,\"push_bytes_per_s\":%llu,\"dirty_bytes_per_s\":%llu,\"expected_downtime_ns\":%llu,",
            (unsigned long long)rtt, (unsigned long long)bw, (unsigned long long)dirty_bps, (unsigned long long)expected);
    fl_jput(j, "\"final_collect_ns\":%llu,\"final_dirty_chunks\":%llu,\"bytes_pushed\":%llu,\"push_requests\":%llu,",
            (unsigned long long)final_collect_ns, (unsigned long long)k, (unsigned long long)m->bytes_pushed,
            (unsigned long long)m->requests);
    fl_jput(j, "\"intervals_written\":%llu,\"writes\":%llu,\"tracker_faults\":%llu}", (unsigned long long)done,
            (unsigned long long)(done * m->w.per_interval), (unsigned long long)atomic_load(&tr->faults));
    if (fl_jfull(j)) {
        fl_errf(err, errlen, "migrate source: result larger than the output buffer");
        goto out;
    }
    /* Tell the destination now; unmapping and closing come after. */
    if (m->o.out_fd >= 0 && put_line((int)m->o.out_fd, j->p, err, errlen))
        goto out;
    if (serving) { /* serve the destination's pulls until the caller says done */
        char line[32];
        if (get_line((int)m->o.go_fd, line, sizeof line, err, errlen))
            goto out;
        if (strcmp(line, "done")) {
            fl_errf(err, errlen, "migrate source: expected 'done' after the cut-over, got '%s'", line);
            goto out;
        }
    }
    rc = 0;
out:
    if (m->srv) /* before the memory it serves goes */
        fl_nbd_stop(m->srv);
    if (writing) {
        atomic_store(&m->stop, true);
        pthread_join(wt, NULL);
    }
    fl_tracker_destroy(tr);
    if (m->base)
        munmap(m->base, len);
    if (m->conn)
        m->src->ops->disconnect(m->conn);
    if (m->src)
        m->src->ops->destroy(m->src);
    return rc;
}

struct call {
    const char *spec;
    fl_region *r;
    char *out;
    size_t outlen;
    int rc;
};

static void *source_main(void *arg)
{
    struct call *a = arg;
    struct msrc *m = calloc(1, sizeof *m);
    char err[FL_ERR_LEN], rest[1024];
    a->rc = -1;
    if (!m) {
        fl_errf(a->out, a->outlen, "out of memory");
        return NULL;
    }
    if (parse(a->spec, &m->o, rest, sizeof rest, err, sizeof err) || fl_config_parse(rest, &m->cfg, err, sizeof err))
        goto done;
    if (m->o.mode != MODE_PRECOPY && (m->o.out_fd < 0 || m->o.go_fd < 0)) {
        fl_errf(err, sizeof err, "mode=postcopy and hybrid need out_fd and go_fd (the caller starts the destination in between)");
        goto done;
    }
    if (strcmp(m->cfg.source, "tcp")) {
        fl_errf(err, sizeof err, "migrate needs source=tcp (the destination's store is the chunk server)");
        goto done;
    }
    m->nchunks = m->cfg.region_bytes / m->cfg.chunk_bytes;
    if (fl_writer_init(&m->w, &m->o.wo, m->cfg.seed, m->nchunks, m->cfg.chunk_bytes, err, sizeof err))
        goto done;
    m->idx = malloc(m->nchunks * sizeof *m->idx);
    m->tail = malloc(m->nchunks * sizeof *m->tail);
    m->merged = malloc(m->nchunks * sizeof *m->merged);
    m->run_off = malloc(m->nchunks * sizeof *m->run_off);
    m->run_len = malloc(m->nchunks * sizeof *m->run_len);
    m->offs = malloc(m->w.per_interval * sizeof *m->offs);
    if (!m->idx || !m->tail || !m->merged || !m->run_off || !m->run_len || !m->offs) {
        fl_errf(err, sizeof err, "out of memory");
        goto done;
    }
    fl_pin_cpu(fl_cpu_for(m->cfg.cpus, false));
    struct fl_jbuf j = {.p = a->out, .len = a->outlen};
    if (source_run(m, &j, err, sizeof err) == 0)
        a->rc = 0;
done:
    if (a->rc)
        fl_errf(a->out, a->outlen, "%s", err);
    fl_writer_free(&m->w);
    free(m->idx);
    free(m->tail);
    free(m->merged);
    free(m->run_off);
    free(m->run_len);
    free(m->offs);
    free(m);
    return NULL;
}

/* ---- destination ------------------------------------------------------------------ */
struct mdst {
    struct fl_region *r;
    struct mopts o;
    struct fl_writer w;
    uint64_t *offs;
    /* The threads wait for the cut-over blocked on this gate. They used to
     * spin on a flag: on 2 CPUs the three spinning threads left the source's
     * pushes and the chunk server waiting for a scheduler tick at a
     * time through the whole pre-copy and cut-over. */
    pthread_mutex_t gate_mu;
    pthread_cond_t gate_cv;
    int ready;
    bool go;
    atomic_bool abort;
};

struct dthread {
    struct mdst *d;
    int index; /* 0: the application; 1..: background pullers */
    pthread_t th;
    bool started;
    struct fl_wctx ctx;
    struct fl_handler_stats st; /* this thread's sigsegv fault counters (ctx.stats) */
    struct fl_samples access_ns;
    uint64_t t_first, first_ns, accesses;
    char err[FL_ERR_LEN];
    int rc;
};

/* Out of line: nothing live here is clobbered when a handler jumps back. */
static __attribute__((noinline)) void dest_loop(struct dthread *t, uint8_t *scratch)
{
    struct mdst *d = t->d;
    struct fl_region *r = d->r;
    const uint64_t chunk = r->cfg.chunk_bytes;
    if (sigsetjmp(t->ctx.abort_jmp, 1)) {
        t->ctx.jmp_armed = 0;
        return;
    }
    t->ctx.jmp_armed = 1;
    if (t->index == 0) {
        for (uint64_t j = 0; j < d->w.per_interval && !atomic_load(&r->failed); j++) {
            uint64_t off = d->offs[j] / chunk * chunk, t0 = fl_now();
            memcpy(scratch, r->base + off, chunk);
            uint64_t t1 = fl_now();
            if (!t->accesses++) {
                t->t_first = t1;
                t->first_ns = t1 - t0;
            }
            fl_samples_add(&t->access_ns, t1 - t0);
        }
    } else {
        for (uint64_t c = (uint64_t)t->index - 1; c < r->nchunks && !atomic_load(&r->failed); c += d->o.bg_threads)
            (void)*(volatile uint8_t *)(r->base + c * chunk);
    }
    t->ctx.jmp_armed = 0;
}

static void *dest_thread(void *arg)
{
    struct dthread *t = arg;
    struct fl_region *r = t->d->r;
    uint8_t *scratch = NULL;
    t->rc = -1;
    fl_pin_cpu(fl_cpu_for(r->cfg.cpus, false));
    t->ctx.r = r;
    t->ctx.stats = &t->st;
    if (r->source->ops->connect(r->source, &t->ctx.conn, t->err, sizeof t->err))
        goto ready;
    if (!(scratch = aligned_alloc(64, r->cfg.chunk_bytes))) {
        fl_errf(t->err, sizeof t->err, "out of memory");
        goto ready;
    }
    memset(scratch, 0, r->cfg.chunk_bytes);
    fl_tls_wctx = &t->ctx;
    t->rc = 0;
ready:
    pthread_mutex_lock(&t->d->gate_mu);
    t->d->ready++;
    pthread_cond_broadcast(&t->d->gate_cv);
    while (!t->d->go) /* every thread starts at once: no thread's set-up in the timing */
        pthread_cond_wait(&t->d->gate_cv, &t->d->gate_mu);
    pthread_mutex_unlock(&t->d->gate_mu);
    if (!t->rc && !atomic_load(&t->d->abort))
        dest_loop(t, scratch);
    fl_tls_wctx = NULL;
    free(scratch);
    if (t->ctx.conn)
        r->source->ops->disconnect(t->ctx.conn);
    return NULL;
}

static void *dest_main(void *arg)
{
    uint64_t t_go = fl_now();
    struct call *a = arg;
    struct fl_region *r = a->r;
    struct mdst d = {.r = r, .gate_mu = PTHREAD_MUTEX_INITIALIZER, .gate_cv = PTHREAD_COND_INITIALIZER};
    struct dthread *ts = NULL;
    uint8_t *expect = NULL;
    char err[FL_ERR_LEN] = "", rest[1024];
    int n = 0;
    a->rc = -1;
    if (parse(a->spec, &d.o, rest, sizeof rest, err, sizeof err))
        goto done;
    if (rest[0]) {
        fl_errf(err, sizeof err, "fl_migrate_dest: unknown keys '%s'", rest);
        goto done;
    }
    if (!r->ops->lazy || !r->source) {
        fl_errf(err, sizeof err, "migrate's destination needs a pull strategy (uffd or sigsegv), not %s", r->ops->name);
        goto done;
    }
    if (fl_writer_init(&d.w, &d.o.wo, r->cfg.seed, r->nchunks, r->cfg.chunk_bytes, err, sizeof err))
        goto done;
    d.offs = malloc(d.w.per_interval * sizeof *d.offs);
    /* A region-filling prefetch pulls the rest (from the first fault on);
     * without one, bg_threads touch every chunk. */
    const bool engine = fl_pf_fills_region(r->pf);
    n = engine ? 1 : 1 + (int)d.o.bg_threads;
    ts = calloc((size_t)n, sizeof *ts);
    if (!d.offs || !ts) {
        fl_errf(err, sizeof err, "out of memory");
        goto done;
    }
    if (fl_samples_init(&ts[0].access_ns, d.w.per_interval)) {
        fl_errf(err, sizeof err, "out of memory");
        goto done;
    }
    for (int i = 0; i < n; i++)
        if (fl_samples_init(&ts[i].st.fetch_ns, r->nchunks) || fl_samples_init(&ts[i].st.install_ns, r->nchunks)) {
            fl_errf(err, sizeof err, "out of memory for statistics");
            goto done;
        }
    int started = 0;
    for (int i = 0; i < n; i++) {
        ts[i].d = &d;
        ts[i].index = i;
        if (pthread_create(&ts[i].th, NULL, dest_thread, &ts[i])) {
            fl_errf(err, sizeof err, "cannot start destination threads");
            break;
        }
        ts[i].started = true;
        started++;
    }
    pthread_mutex_lock(&d.gate_mu);
    while (d.ready < started)
        pthread_cond_wait(&d.gate_cv, &d.gate_mu);
    pthread_mutex_unlock(&d.gate_mu);
    /* Prepared (threads up, connections open): wait for the cut-over line. */
    if (started == n && d.o.go_fd >= 0) {
        char line[128];
        if (put_line((int)d.o.ready_fd, "{\"ready\":true}", err, sizeof err) ||
            get_line((int)d.o.go_fd, line, sizeof line, err, sizeof err))
            started = -1;
        else if (strncmp(line, "intervals=", 10) || (d.o.intervals = strtoull(line + 10, NULL, 10), 0)) {
            fl_errf(err, sizeof err, "bad cut-over line '%s' (want intervals=N)", line);
            started = -1;
        }
        t_go = fl_now();
    }
    if (started == n)
        fl_writer_plan(&d.w, d.o.intervals, d.offs); /* what the application touches next */
    else
        atomic_store(&d.abort, true); /* threads leave without touching anything */
    uint64_t t_begin = fl_now();
    pthread_mutex_lock(&d.gate_mu);
    d.go = true;
    pthread_cond_broadcast(&d.gate_cv);
    pthread_mutex_unlock(&d.gate_mu);
    for (int i = 0; i < n; i++)
        if (ts[i].started)
            pthread_join(ts[i].th, NULL);
    uint64_t t_app = fl_now(), t_all = t_app;
    struct fl_pf_counts pf = {0};
    if (engine && started == n && !atomic_load(&r->failed)) {
        if (fl_pf_wait_filled(r->pf, 120000) && !atomic_load(&r->failed))
            fl_region_fail(r, "migrate: the destination's prefetch did not fill the region within 120 s");
        fl_pf_counts(r->pf, &pf);
        t_all = fl_now(); /* filled_ns counts from the first fault; the wait polls every 200 us */
    }
    if (r->ops->quiesce)
        r->ops->quiesce(r);
    if (started != n)
        goto done;
    for (int i = 0; i < n; i++)
        if (ts[i].rc) {
            fl_errf(err, sizeof err, "%s", ts[i].err);
            goto done;
        }
    if (atomic_load(&r->failed)) {
        while (atomic_load(&r->failed) != 2)
            ;
        fl_errf(err, sizeof err, "%s", r->fail_msg);
        goto done;
    }
    /* The source's final contents, rebuilt, against what the destination holds. */
    const uint64_t len = r->cfg.region_bytes, chunk = r->cfg.chunk_bytes;
    void *e = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (e == MAP_FAILED) {
        fl_errf(err, sizeof err, "out of memory for the expected contents");
        goto done;
    }
    expect = e;
    fl_fill(expect, len, r->cfg.seed ^ FL_MIGRATE_SALT, 0);
    fl_writer_replay(&d.w, expect, d.o.intervals, d.offs);
    uint64_t bad = 0, first_bad = 0;
    for (uint64_t c = 0; c < r->nchunks; c++)
        if (memcmp(expect + c * chunk, r->base + c * chunk, chunk) && !bad++)
            first_bad = c * chunk;
    /* Faults that waited on the network: every fault but those on a chunk
     * the prefetcher held back as a trigger (already local). */
    uint64_t faults = 0, fetched = pf.bytes, local = 0;
    for (int i = 0; i < r->nhstats; i++) {
        faults += r->hstats[i].faults;
        fetched += r->hstats[i].bytes_fetched;
        local += r->hstats[i].trigger_faults;
    }
    for (int i = 0; i < n; i++) {
        faults += ts[i].st.faults;
        fetched += ts[i].st.bytes_fetched;
        local += ts[i].st.trigger_faults;
    }
    struct fl_jbuf j = {.p = a->out, .len = a->outlen};
    fl_jput(&j, "{\"role\":\"destination\",\"strategy\":\"%s\",\"handler_threads\":%d,\"bg_threads\":%llu,\"dest_prefetch\":\"%s\",",
            r->ops->name, r->cfg.handler_threads, engine ? 0ull : (unsigned long long)d.o.bg_threads, r->cfg.prefetch);
    fl_jput(&j, "\"prefetched\":%llu,\"prefetch_requests\":%llu,\"app_ns\":%llu,\"network_faults\":%llu,",
            (unsigned long long)pf.prefetched, (unsigned long long)pf.requests, (unsigned long long)(t_app - t_begin),
            (unsigned long long)(faults - local));
    fl_jput(&j, "\"t_go_ns\":%llu,\"t_begin_ns\":%llu,\"t_first_served_ns\":%llu,\"t_all_present_ns\":%llu,\"first_access_ns\":%llu,",
            (unsigned long long)t_go, (unsigned long long)t_begin, (unsigned long long)ts[0].t_first, (unsigned long long)t_all,
            (unsigned long long)ts[0].first_ns);
    fl_jput(&j, "\"accesses\":%llu,\"access_ns_p50\":%llu,\"access_ns_p99\":%llu,\"access_ns_max\":%llu,",
            (unsigned long long)ts[0].accesses, (unsigned long long)fl_samples_quantile(&ts[0].access_ns, 0.5),
            (unsigned long long)fl_samples_quantile(&ts[0].access_ns, 0.99),
            (unsigned long long)fl_samples_quantile(&ts[0].access_ns, 1.0));
    fl_jput(&j, "\"pull_ns\":%llu,\"faults\":%llu,\"bytes_fetched\":%llu,\"verified\":%s,\"bad_chunks\":%llu",
            (unsigned long long)(t_all - t_begin), (unsigned long long)faults, (unsigned long long)fetched, bad ? "false" : "true",
            (unsigned long long)bad);
    if (bad)
        fl_jput(&j, ",\"first_bad_offset\":%llu", (unsigned long long)first_bad);
    fl_jput(&j, "}");
    a->rc = 0;
done:
    if (a->rc)
        fl_errf(a->out, a->outlen, "%s", err[0] ? err : "migrate destination failed");
    if (expect)
        munmap(expect, r->cfg.region_bytes);
    for (int i = 0; ts && i < n; i++) {
        fl_samples_free(&ts[i].st.fetch_ns);
        fl_samples_free(&ts[i].st.install_ns);
    }
    if (ts)
        fl_samples_free(&ts[0].access_ns);
    free(ts);
    free(d.offs);
    fl_writer_free(&d.w);
    return NULL;
}

static int on_thread(void *(*fn)(void *), struct call *a)
{
    pthread_t th;
    int e = pthread_create(&th, NULL, fn, a);
    if (e) {
        fl_errf(a->out, a->outlen, "cannot start a thread: %s", strerror(e));
        return -1;
    }
    pthread_join(th, NULL);
    return a->rc;
}

int fl_migrate_source(const char *spec, char *out, size_t outlen)
{
    struct call a = {spec, NULL, out, outlen, -1};
    return on_thread(source_main, &a);
}

int fl_migrate_dest(fl_region *r, const char *spec, char *out, size_t outlen)
{
    struct call a = {spec, r, out, outlen, -1};
    if (!r) {
        fl_errf(out, outlen, "fl_migrate_dest: no region");
        return -1;
    }
    return on_thread(dest_main, &a);
}
