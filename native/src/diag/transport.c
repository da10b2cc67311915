/* The transport floor: what the tcp source costs with no page fault around it,
 * timed with the same clock, so per-fault cost splits into transport + handling. */
#include "core/internal.h"
#include "core/jbuf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define TRACE_MAX 4096 /* round trips a trace lists */

struct transport_args {
    struct fl_config cfg;
    uint64_t requests;
    int ping; /* op=ping: empty round trips (NBD_CMD_FLUSH: the RTT probe), not READs */
    int trace; /* op=ping trace=1: each round trip's send and receive times too */
    int land_region; /* land=region: each READ lands at its own offset of a populated
                        region-sized mapping, as a fault's fetch does, instead of in
                        one reused (cache-warm) buffer */
    char rest[1024]; /* the region keys, for fl_config_parse */
    char *out;
    size_t outlen;
    int rc;
};

static void *transport_main(void *arg)
{
    struct transport_args *a = arg;
    struct fl_config *cfg = &a->cfg;
    char err[FL_ERR_LEN];
    struct fl_conn *conn = NULL;
    uint8_t *buf = NULL, *land = NULL; /* where READs land: one buffer, or land=region */
    uint64_t *sent = NULL, *received = NULL; /* trace=1 */
    struct fl_samples s = {0};
    a->rc = -1;
    fl_pin_cpu(fl_cpu_for(cfg->cpus, false));
    struct fl_source *src = fl_source_tcp_create(cfg, err, sizeof err);
    if (!src) {
        fl_errf(a->out, a->outlen, "%s", err);
        return NULL;
    }
    if (src->ops->connect(src, &conn, err, sizeof err)) {
        fl_errf(a->out, a->outlen, "%s", err);
        goto out;
    }
    if (a->land_region) {
        /* Populated now, outside the timed reads (as sigsegv's memfd and uffd's
         * continue and move mirrors are): only the cache is cold, as in a fault. */
        void *m = mmap(NULL, cfg->region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (m == MAP_FAILED) {
            fl_errf(a->out, a->outlen, "land=region: cannot map %llu bytes: %s", (unsigned long long)cfg->region_bytes, strerror(errno));
            goto out;
        }
        land = m;
    } else if ((buf = malloc(cfg->chunk_bytes))) {
        memset(buf, 0, cfg->chunk_bytes); /* faulted in before timing, as the application's scratch buffer is */
    }
    if (!(buf || land) || fl_samples_init(&s, a->requests)) {
        fl_errf(a->out, a->outlen, "out of memory");
        goto out;
    }
    /* total: time inside the reads; cpu: this thread's CPU time inside them */
    uint64_t nchunks = cfg->region_bytes / cfg->chunk_bytes, bad = 0, total = 0, cpu = 0;
    if (a->trace && (!(sent = calloc(a->requests, sizeof *sent)) || !(received = calloc(a->requests, sizeof *received)))) {
        fl_errf(a->out, a->outlen, "out of memory");
        goto out;
    }
    if (a->ping) {
        /* The RTT probe: what the tcp source itself waits per round trip, after a
         * short warm-up (the first exchanges on a fresh connection are slower). */
        for (int i = 0; i < 3; i++)
            if (!src->ops->ping_ns(conn, 1, NULL)) {
                fl_errf(a->out, a->outlen, "ping: no answer (connection broken or timed out)");
                goto out;
            }
        for (uint64_t i = 0; i < a->requests; i++) {
            uint64_t at; /* when it was sent, by the timing thread itself: no preemption after in between */
            uint64_t dt = src->ops->ping_ns(conn, 1, &at);
            if (!dt) {
                fl_errf(a->out, a->outlen, "ping %llu of %llu: no answer (connection broken or timed out)", (unsigned long long)i + 1,
                        (unsigned long long)a->requests);
                goto out;
            }
            total += dt;
            fl_samples_add(&s, dt);
            if (received) { /* CLOCK_MONOTONIC, as the chunk server's clock: the two sides line up */
                sent[i] = at;
                received[i] = at + dt;
            }
        }
        struct fl_jbuf j = {.p = a->out, .len = a->outlen};
        fl_jput(&j,
                "{\"op\":\"ping\",\"n\":%llu,\"p50_ns\":%llu,\"p5_ns\":%llu,\"p95_ns\":%llu,\"min_ns\":%llu,"
                "\"max_ns\":%llu,\"mean_ns\":%.1f",
                (unsigned long long)a->requests, (unsigned long long)fl_samples_quantile(&s, 0.5),
                (unsigned long long)fl_samples_quantile(&s, 0.05), (unsigned long long)fl_samples_quantile(&s, 0.95),
                (unsigned long long)fl_samples_quantile(&s, 0.0), (unsigned long long)fl_samples_quantile(&s, 1.0),
                (double)total / (double)a->requests);
        for (int k = 0; received && k < 2; k++) {
            const uint64_t *v = k ? received : sent;
            fl_jput(&j, ",\"%s_ns\":[", k ? "received" : "sent");
            for (uint64_t i = 0; i < a->requests; i++)
                fl_jput(&j, "%s%llu", i ? "," : "", (unsigned long long)v[i]);
            fl_jput(&j, "]");
        }
        fl_jput(&j, "}");
        if (fl_jfull(&j)) {
            fl_errf(a->out, a->outlen, "ping: output buffer too small (%zu bytes, need %zu)", a->outlen, j.used + 1);
            goto out;
        }
        a->rc = 0;
        goto out;
    }
    for (uint64_t i = 0; i < a->requests; i++) {
        uint64_t off = (i % nchunks) * cfg->chunk_bytes, first_bad;
        uint8_t *dst = land ? land + off : buf;
        uint64_t c0 = fl_thread_cpu_ns(), t0 = fl_now(); /* CPU clock outside the timed window */
        if (src->ops->read(conn, off, dst, cfg->chunk_bytes, err, sizeof err)) {
            fl_errf(a->out, a->outlen, "transport: read at offset 0x%llx failed: %s", (unsigned long long)off, err);
            goto out;
        }
        uint64_t dt = fl_now() - t0;
        cpu += fl_thread_cpu_ns() - c0;
        total += dt;
        fl_samples_add(&s, dt);
        bad += fl_verify(dst, cfg->chunk_bytes, cfg->seed, off, &first_bad);
    }
    double mibps = total ? (double)(a->requests * cfg->chunk_bytes) / (1 << 20) / ((double)total / 1e9) : 0;
    snprintf(a->out, a->outlen,
             "{\"chunk_bytes\":%llu,\"land\":\"%s\",\"n\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f,"
             "\"throughput_mibps\":%.3f,\"cpu_ns\":%llu,\"verified\":%s}",
             (unsigned long long)cfg->chunk_bytes, land ? "region" : "buffer", (unsigned long long)a->requests,
             (unsigned long long)fl_samples_quantile(&s, 0.5), (unsigned long long)fl_samples_quantile(&s, 0.99),
             (unsigned long long)fl_samples_quantile(&s, 1.0), (double)total / (double)a->requests, mibps, (unsigned long long)cpu,
             bad ? "false" : "true");
    a->rc = 0;
out:
    fl_samples_free(&s);
    free(sent);
    free(received);
    free(buf);
    if (land)
        munmap(land, cfg->region_bytes);
    if (conn)
        src->ops->disconnect(conn);
    src->ops->destroy(src);
    return NULL;
}

/* One key of a transport spec: requests, op, trace, or a region key passed on. */
static int transport_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct transport_args *a = ctx;
    if (!strcmp(k, "requests")) {
        if (fl_parse_u64(v, 1, 100000000, &a->requests)) {
            fl_errf(err, errlen, "requests must be 1 to 100000000, got '%s'", v);
            return -1;
        }
    } else if (!strcmp(k, "op")) {
        if (strcmp(v, "read") && strcmp(v, "ping")) {
            fl_errf(err, errlen, "op must be read or ping, not '%s'", v);
            return -1;
        }
        a->ping = !strcmp(v, "ping");
    } else if (!strcmp(k, "trace")) {
        if (strcmp(v, "0") && strcmp(v, "1")) {
            fl_errf(err, errlen, "trace must be 0 or 1, not '%s'", v);
            return -1;
        }
        a->trace = !strcmp(v, "1");
    } else if (!strcmp(k, "land")) {
        if (strcmp(v, "buffer") && strcmp(v, "region")) {
            fl_errf(err, errlen, "land must be buffer or region, not '%s'", v);
            return -1;
        }
        a->land_region = !strcmp(v, "region");
    } else {
        return fl_spec_pass(a->rest, sizeof a->rest, k, v, err, errlen);
    }
    return 0;
}

int fl_transport(const char *spec, char *out, size_t outlen)
{
    struct transport_args a = {.out = out, .outlen = outlen, .requests = 1000};
    if (fl_spec_each(spec, "transport spec", transport_key, &a, out, outlen))
        return -1;
    if (a.land_region && a.ping) {
        fl_errf(out, outlen, "land=region is for op=read (pings carry no bytes)");
        return -1;
    }
    if (a.trace && (!a.ping || a.requests > TRACE_MAX)) {
        fl_errf(out, outlen, "trace=1 is for op=ping with at most %d requests", TRACE_MAX);
        return -1;
    }
    if (fl_config_parse(a.rest, &a.cfg, out, outlen))
        return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, transport_main, &a)) {
        fl_errf(out, outlen, "cannot start the transport thread");
        return -1;
    }
    pthread_join(t, NULL);
    return a.rc;
}
