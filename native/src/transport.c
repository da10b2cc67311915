/* The transport floor: what the tcp source costs with no page fault around it,
 * timed with the same clock, so per-fault cost splits into transport + handling. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct transport_args {
    struct fl_config cfg;
    uint64_t requests;
    int ping; /* op=ping: empty round trips (the RTT probe), not READs */
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
    uint8_t *buf = NULL;
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
    buf = malloc(cfg->chunk_bytes);
    if (!buf || fl_samples_init(&s, a->requests)) {
        fl_errf(a->out, a->outlen, "out of memory");
        goto out;
    }
    uint64_t nchunks = cfg->region_bytes / cfg->chunk_bytes, bad = 0, total = 0;
    if (a->ping) {
        /* The RTT probe: what the tcp source itself waits per round trip, after a
         * short warm-up (the first exchanges on a fresh connection are slower). */
        for (int i = 0; i < 3; i++)
            if (!src->ops->ping_ns(conn, 1)) {
                fl_errf(a->out, a->outlen, "ping: no answer (connection broken or timed out)");
                goto out;
            }
        for (uint64_t i = 0; i < a->requests; i++) {
            uint64_t dt = src->ops->ping_ns(conn, 1);
            if (!dt) {
                fl_errf(a->out, a->outlen, "ping %llu of %llu: no answer (connection broken or timed out)",
                        (unsigned long long)i + 1, (unsigned long long)a->requests);
                goto out;
            }
            total += dt;
            fl_samples_add(&s, dt);
        }
        snprintf(a->out, a->outlen,
                 "{\"op\":\"ping\",\"n\":%llu,\"p50_ns\":%llu,\"p5_ns\":%llu,\"p95_ns\":%llu,\"min_ns\":%llu,"
                 "\"max_ns\":%llu,\"mean_ns\":%.1f}",
                 (unsigned long long)a->requests, (unsigned long long)fl_samples_quantile(&s, 0.5),
                 (unsigned long long)fl_samples_quantile(&s, 0.05), (unsigned long long)fl_samples_quantile(&s, 0.95),
                 (unsigned long long)fl_samples_quantile(&s, 0.0), (unsigned long long)fl_samples_quantile(&s, 1.0),
                 (double)total / (double)a->requests);
        a->rc = 0;
        goto out;
    }
    for (uint64_t i = 0; i < a->requests; i++) {
        uint64_t off = (i % nchunks) * cfg->chunk_bytes, first_bad;
        uint64_t t0 = fl_now();
        if (src->ops->read(conn, off, buf, cfg->chunk_bytes, err, sizeof err)) {
            fl_errf(a->out, a->outlen, "transport: read at offset 0x%llx failed: %s", (unsigned long long)off, err);
            goto out;
        }
        uint64_t dt = fl_now() - t0;
        total += dt;
        fl_samples_add(&s, dt);
        bad += fl_verify(buf, cfg->chunk_bytes, cfg->seed, off, &first_bad);
    }
    double mibps = total ? (double)(a->requests * cfg->chunk_bytes) / (1 << 20) / ((double)total / 1e9) : 0;
    snprintf(a->out, a->outlen,
             "{\"chunk_bytes\":%llu,\"n\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"max_ns\":%llu,\"mean_ns\":%.1f,"
             "\"throughput_mibps\":%.3f,\"verified\":%s}",
             (unsigned long long)cfg->chunk_bytes, (unsigned long long)a->requests,
             (unsigned long long)fl_samples_quantile(&s, 0.5), (unsigned long long)fl_samples_quantile(&s, 0.99),
             (unsigned long long)fl_samples_quantile(&s, 1.0), (double)total / (double)a->requests, mibps,
             bad ? "false" : "true");
    a->rc = 0;
out:
    fl_samples_free(&s);
    free(buf);
    if (conn)
        src->ops->disconnect(conn);
    src->ops->destroy(src);
    return NULL;
}

int fl_transport(const char *spec, char *out, size_t outlen)
{
    struct transport_args a = {.out = out, .outlen = outlen, .requests = 1000};
    char rest[1024] = "", buf[1024];
    snprintf(buf, sizeof buf, "%s", spec ? spec : "");
    char *save = NULL;
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        if (!strncmp(tok, "requests=", 9)) {
            a.requests = strtoull(tok + 9, NULL, 10);
        } else if (!strcmp(tok, "op=ping")) {
            a.ping = 1;
        } else if (!strcmp(tok, "op=read")) {
            a.ping = 0;
        } else if (!strncmp(tok, "op=", 3)) {
            fl_errf(out, outlen, "op must be read or ping, not '%s'", tok + 3);
            return -1;
        } else {
            strncat(rest, tok, sizeof rest - strlen(rest) - 2);
            strcat(rest, " ");
        }
    }
    if (a.requests == 0) {
        fl_errf(out, outlen, "requests must be at least 1");
        return -1;
    }
    if (fl_config_parse(rest, &a.cfg, out, outlen))
        return -1;
    pthread_t t;
    if (pthread_create(&t, NULL, transport_main, &a)) {
        fl_errf(out, outlen, "cannot start the transport thread");
        return -1;
    }
    pthread_join(t, NULL);
    return a.rc;
}
