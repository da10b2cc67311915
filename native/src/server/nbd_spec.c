/* The NBD server's start spec (include/faultlab.h lists the keys): defaults,
 * parsing, and the checks that keep a bad spec from starting a server. */
#include "server/nbd_server.h"
#include "server/nbd_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Bytes: a whole number, optionally with K/KiB, M/MiB, G/GiB or T/TiB. */
static int parse_bytes(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || end == v || v[0] == '-')
        return -1;
    int shift = !*end                                      ? 0
                : !strcmp(end, "K") || !strcmp(end, "KiB") ? 10
                : !strcmp(end, "M") || !strcmp(end, "MiB") ? 20
                : !strcmp(end, "G") || !strcmp(end, "GiB") ? 30
                : !strcmp(end, "T") || !strcmp(end, "TiB") ? 40
                                                           : -1;
    if (shift < 0 || n > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)n << shift;
    return 0;
}

static int opts_key(const char *k, const char *v, void *ctx, char *err, size_t errlen)
{
    struct nbd_opts *o = ctx;
    uint64_t u;
    struct in6_addr a6;
    if (!strcmp(k, "listen") && strlen(v) < sizeof o->listen && (inet_pton(AF_INET, v, &a6) == 1 || inet_pton(AF_INET6, v, &a6) == 1)) {
        strcpy(o->listen, v);
    } else if (!strcmp(k, "port") && !fl_parse_u64(v, 0, 65535, &u)) {
        o->port = (int)u;
    } else if (!strcmp(k, "region") && !parse_bytes(v, &u) && u > 0 && u <= INT64_MAX) {
        o->region = u;
    } else if (!strcmp(k, "seed") && !fl_parse_u64(v, 0, UINT64_MAX, &u)) {
        o->seed = u;
    } else if (!strcmp(k, "rtt_us") && !fl_parse_u64(v, 0, 10000000, &u)) {
        o->rtt_ns = u * 1000;
    } else if (!strcmp(k, "export") && strlen(v) < sizeof o->export_name) {
        strcpy(o->export_name, v);
    } else if (!strcmp(k, "max_conns") && !fl_parse_u64(v, 1, 65536, &u)) {
        o->max_conns = (uint32_t)u;
    } else if (!strcmp(k, "queue_cap") && !parse_bytes(v, &u)) {
        o->queue_cap = u;
    } else if (!strcmp(k, "total_cap") && !parse_bytes(v, &u)) {
        o->total_cap = u;
    } else if (!strcmp(k, "store_cap") && !parse_bytes(v, &u)) {
        o->store_cap = u;
    } else if (!strcmp(k, "handshake_timeout_ms") && !fl_parse_u64(v, 1, 3600000, &u)) {
        o->handshake_ns = u * 1000000;
    } else if (!strcmp(k, "idle_timeout_ms") && !fl_parse_u64(v, 1, 3600000, &u)) {
        o->idle_ns = u * 1000000;
    } else if (!strcmp(k, "payload_timeout_ms") && !fl_parse_u64(v, 1, 3600000, &u)) {
        o->payload_ns = u * 1000000;
    } else if (!strcmp(k, "cpu")) {
        return fl_parse_cpu_key("nbd server", k, v, &o->cpu, err, errlen);
    } else if (!strcmp(k, "rx_stamps") && !fl_parse_u64(v, 0, 1, &u)) {
        o->rx_stamps = (int)u;
    } else if (!strcmp(k, "log_fd") && (!strcmp(v, "-1") || !fl_parse_u64(v, 0, 1 << 30, &u))) {
        o->log_fd = !strcmp(v, "-1") ? -1 : (int)u;
    } else {
        fl_errf(err, errlen, "nbd server: bad value for '%s': '%s'", k, v);
        return -1;
    }
    return 0;
}

int nbd_opts_parse(const char *spec, struct nbd_opts *o, char *err, size_t errlen)
{
    *o = (struct nbd_opts){
        .listen = "127.0.0.1", /* loopback unless an address is given */
        .region = 64ull << 20,
        .seed = 1,
        .export_name = "faultlab",
        .max_conns = 1024,
        .queue_cap = 64ull << 20,
        .total_cap = 256ull << 20,
        .store_cap = 4ull << 30,
        .handshake_ns = 10000ull * 1000000,
        .idle_ns = 60000ull * 1000000,
        .payload_ns = 10000ull * 1000000,
        .log_fd = 2,
        .cpu = -1,
        .rx_stamps = -1,
    };
    if (fl_spec_each(spec, "nbd server spec", opts_key, o, err, errlen))
        return -1;
    if (o->rx_stamps < 0)
        o->rx_stamps = o->rtt_ns > 0;
    uint64_t largest_reply = NBD_REPLY_BYTES + NBD_MAX_BLOCK;
    if (o->queue_cap < largest_reply) {
        fl_errf(err, errlen, "nbd server: queue_cap %llu bytes is less than the largest reply (%llu bytes: a %u MiB READ)",
                (unsigned long long)o->queue_cap, (unsigned long long)largest_reply, NBD_MAX_BLOCK >> 20);
        return -1;
    }
    if (o->total_cap < o->queue_cap) {
        fl_errf(err, errlen, "nbd server: total_cap %llu bytes is less than queue_cap (%llu bytes)", (unsigned long long)o->total_cap,
                (unsigned long long)o->queue_cap);
        return -1;
    }
    if (o->log_fd >= 0 && fcntl(o->log_fd, F_GETFD) < 0) {
        fl_errf(err, errlen, "nbd server: log_fd %d is not an open descriptor", o->log_fd);
        return -1;
    }
    return 0;
}
