/* server/nbd_server.c over real loopback sockets: the handshake both ways,
 * contents (procedural, written, partly written), errors that keep the
 * connection and violations that close it, RTT timing against an RTT-0
 * baseline, pipelining, the caps and timeouts under misbehaving clients, a
 * 1 TiB region that costs nothing, and a stop that leaves nothing behind. Each
 * test starts its own server and checks that no descriptor or thread is left. */
#define _GNU_SOURCE
#include "unit.h"
#include "proc_count.h"
#include "nbd_client.h"
#include "../src/core/internal.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

#define MiB (1ull << 20)

/* One server, its log in a memfd (a pipe could fill and block the server). */
struct srv {
    fl_nbd_server *s;
    int port, log;
    long fds0, threads0;
};

static int srv_start(struct srv *f, const char *spec)
{
    char full[512], err[256] = "";
    *f = (struct srv){.log = memfd_create("nbd-log", MFD_CLOEXEC)};
    f->fds0 = settled_count("/proc/self/fd", -1), f->threads0 = settled_count("/proc/self/task", -1);
    snprintf(full, sizeof full, "%s log_fd=%d", spec, f->log);
    f->s = fl_nbd_start(full, err, sizeof err);
    CHECK(f->s != NULL, "the server starts with '%s' (%s)", spec, f->s ? "ok" : err);
    f->port = fl_nbd_port(f->s);
    return f->s ? 0 : -1;
}

/* After fl_nbd_stop and the clients' close: nothing of the server may remain. */
static void srv_check_gone(struct srv *f)
{
    long fds1 = settled_count("/proc/self/fd", f->fds0), threads1 = settled_count("/proc/self/task", f->threads0);
    CHECK(fds1 == f->fds0 && threads1 == f->threads0, "stop leaves no descriptor or thread (fds %ld -> %ld, threads %ld -> %ld)", f->fds0,
          fds1, f->threads0, threads1);
    close(f->log);
}

static void srv_stop(struct srv *f)
{
    fl_nbd_stop(f->s);
    f->s = NULL;
    srv_check_gone(f);
}

static bool log_has(struct srv *f, const char *needle)
{
    static char buf[1 << 20];
    ssize_t n = pread(f->log, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    return strstr(buf, needle) != NULL;
}

static long long stat_of(struct srv *f, const char *key)
{
    char json[4096], pat[64];
    if (fl_nbd_stats(f->s, json, sizeof json))
        return -1;
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* READ [off, off+len) on fd and compare it with want. */
static bool read_equals(int fd, uint64_t off, uint32_t len, const uint8_t *want)
{
    uint8_t *got = malloc(len);
    bool ok = got && nc_read(fd, off, len, got) == 0 && !memcmp(got, want, len);
    free(got);
    return ok;
}

static bool read_is_fill(int fd, uint64_t seed, uint64_t off, uint32_t len)
{
    uint8_t *want = malloc(len);
    nc_expected(want, seed, off, len);
    bool ok = read_equals(fd, off, len, want);
    free(want);
    return ok;
}

/* ---- handshake ---- */

static void handshake_via_export_name(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB seed=5"))
        return;
    uint16_t hflags = 0;
    uint8_t b[134];
    int fd = nc_connect(f.port);
    CHECK(nc_greeting(fd, &hflags) == 0 && hflags == (NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES),
          "greeting: NBDMAGIC, IHAVEOPT, flags FIXED_NEWSTYLE|NO_ZEROES (0x%x)", hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    nc_option(fd, NBD_OPT_EXPORT_NAME, "faultlab", 8);
    CHECK(nc_recv(fd, b, 10, 2000) == 0 && nbd_get64(b) == MiB && nbd_get16(b + 8) == (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH),
          "EXPORT_NAME 'faultlab': size 1 MiB, transmission flags HAS_FLAGS|SEND_FLUSH");
    CHECK(read_is_fill(fd, 5, 0, 4096), "NO_ZEROES honoured: the next bytes are the first READ's reply");
    close(fd);

    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    nc_option(fd, NBD_OPT_EXPORT_NAME, "", 0);
    bool zeroes = nc_recv(fd, b, sizeof b, 2000) == 0 && nbd_get64(b) == MiB;
    for (size_t i = 10; i < sizeof b; i++)
        zeroes = zeroes && b[i] == 0;
    CHECK(zeroes, "EXPORT_NAME '' (the default export) without NO_ZEROES: size, flags, then 124 zero bytes");
    CHECK(read_is_fill(fd, 5, MiB - 4096, 4096), "then READ works");
    close(fd);

    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    nc_option(fd, NBD_OPT_EXPORT_NAME, "nope", 4);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "faultlab nbd 127.0.0.1:") && log_has(&f, "unknown export 'nope'"),
          "EXPORT_NAME of an unknown export closes the connection, one log line naming the peer");
    close(fd);
    srv_stop(&f);
}

static void handshake_via_go_with_block_sizes(void)
{
    struct srv f;
    if (srv_start(&f, "region=3MiB"))
        return;
    uint16_t hflags;
    uint8_t d[512];
    uint32_t opt, type, len;
    struct nc_info info;
    int fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);

    nc_option(fd, NBD_OPT_LIST, NULL, 0);
    int rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
    CHECK(rc == 0 && opt == NBD_OPT_LIST && type == NBD_REP_SERVER && len == 12 && nbd_get32(d) == 8 && !memcmp(d + 4, "faultlab", 8),
          "LIST: one NBD_REP_SERVER naming 'faultlab'");
    rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
    CHECK(rc == 0 && type == NBD_REP_ACK && len == 0, "LIST ends with NBD_REP_ACK");
    nc_option(fd, NBD_OPT_LIST, "x", 1);
    rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
    CHECK(rc == 0 && type == NBD_REP_ERR_INVALID, "LIST with data: NBD_REP_ERR_INVALID");

    uint32_t last = nc_info_go(fd, NBD_OPT_INFO, "", &info);
    CHECK(last == NBD_REP_ACK && info.size == 3 * MiB && info.tflags == (NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH),
          "INFO: NBD_INFO_EXPORT size 3 MiB, flags HAS_FLAGS|SEND_FLUSH, then ACK");
    CHECK(info.min == 1 && info.pref == 4096 && info.max == 32 * MiB, "INFO: block sizes 1 / 4096 / 32 MiB (%u/%u/%u)", info.min, info.pref,
          info.max);

    uint32_t unknown[] = {NBD_OPT_STRUCTURED_REPLY, NBD_OPT_STARTTLS, 42};
    for (int i = 0; i < 3; i++) {
        nc_option(fd, unknown[i], NULL, 0);
        rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
        CHECK(rc == 0 && opt == unknown[i] && type == NBD_REP_ERR_UNSUP, "option %u: NBD_REP_ERR_UNSUP", unknown[i]);
    }
    CHECK(nc_info_go(fd, NBD_OPT_GO, "other", &info) == NBD_REP_ERR_UNKNOWN, "GO to an unknown export: NBD_REP_ERR_UNKNOWN");
    uint8_t bad[10] = {0, 0, 0, 100}; /* a name of 100 bytes in 10 bytes of data */
    nc_option(fd, NBD_OPT_GO, bad, sizeof bad);
    rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
    CHECK(rc == 0 && type == NBD_REP_ERR_INVALID, "GO with malformed data: NBD_REP_ERR_INVALID");

    last = nc_info_go(fd, NBD_OPT_GO, "faultlab", &info);
    CHECK(last == NBD_REP_ACK && info.size == 3 * MiB && info.max == 32 * MiB, "GO 'faultlab': the same information, then ACK");
    CHECK(read_is_fill(fd, 1, 3 * MiB - 100, 100), "transmission after GO: READ works");
    close(fd);

    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    nc_option(fd, NBD_OPT_ABORT, NULL, 0);
    rc = nc_option_reply(fd, &opt, &type, d, sizeof d, &len);
    CHECK(rc == 0 && opt == NBD_OPT_ABORT && type == NBD_REP_ACK && nc_closed(fd, 2000), "ABORT: NBD_REP_ACK, then the server closes");
    close(fd);

    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | 4);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "unknown client flags 0x5"), "unknown client flags close the connection (logged)");
    close(fd);
    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, 0);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "fixed newstyle"), "a client without FIXED_NEWSTYLE is closed (logged)");
    close(fd);
    srv_stop(&f);
}

/* NBD_INFO_DESCRIPTION "faultlab seed=N" when the client asks for it (the
 * faultlab client checks N against its seed), and not otherwise. */
static void description_names_the_seed(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB seed=12345678901"))
        return;
    uint16_t hflags;
    uint8_t d[512];
    int fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    for (int ask = 1; ask >= 0; ask--) {
        /* INFO for the default export with 2 or 1 requests: BLOCK_SIZE, then DESCRIPTION when asked. */
        nbd_put32(d, 0);
        nbd_put16(d + 4, (uint16_t)(1 + ask));
        nbd_put16(d + 6, NBD_INFO_BLOCK_SIZE);
        nbd_put16(d + 8, NBD_INFO_DESCRIPTION);
        nc_option(fd, NBD_OPT_INFO, d, 8 + 2u * ask);
        bool seen = false, ok = true, acked = false;
        char desc[128] = "";
        for (;;) {
            uint32_t opt, type, len;
            if (nc_option_reply(fd, &opt, &type, d, sizeof d, &len) || opt != NBD_OPT_INFO) {
                ok = false;
                break;
            }
            if (type == NBD_REP_ACK) {
                acked = true;
                break;
            }
            if (type == NBD_REP_INFO && len >= 2 && nbd_get16(d) == NBD_INFO_DESCRIPTION) {
                seen = true;
                size_t n = len - 2 < sizeof desc - 1 ? len - 2 : sizeof desc - 1;
                memcpy(desc, d + 2, n);
                desc[n] = 0;
            }
        }
        if (ask)
            CHECK(ok && acked && seen && !strcmp(desc, "faultlab seed=12345678901"),
                  "INFO asking for NBD_INFO_DESCRIPTION: 'faultlab seed=12345678901' (got '%s'), then ACK", desc);
        else
            CHECK(ok && acked && !seen, "INFO not asking for it: no NBD_INFO_DESCRIPTION");
    }
    struct nc_info info;
    CHECK(nc_info_go(fd, NBD_OPT_GO, "", &info) == NBD_REP_ACK && read_is_fill(fd, 12345678901ull, 4096, 4096), "then GO and READ work");
    close(fd);
    srv_stop(&f);
}

/* ---- contents ---- */

static void reads_equal_fill(void)
{
    const uint64_t size = MiB + 4100; /* not a page multiple: the last page is short */
    char spec[128];
    snprintf(spec, sizeof spec, "region=%llu seed=99", (unsigned long long)size);
    struct srv f;
    if (srv_start(&f, spec))
        return;
    struct nc_info info;
    int fd = nc_open(f.port, &info);
    CHECK(fd >= 0 && info.size == size, "GO: size %llu", (unsigned long long)info.size);
    struct {
        uint64_t off;
        uint32_t len;
    } at[] = {{0, 4096}, {1, 3}, {4095, 10}, {12345, 70000}, {size - 4096, 4096}, {size - 7, 7}, {size - 1, 1}, {0, (uint32_t)size}};
    for (size_t i = 0; i < sizeof at / sizeof *at; i++)
        CHECK(read_is_fill(fd, 99, at[i].off, at[i].len), "READ %u bytes at %llu equals fill(99, offset)", at[i].len,
              (unsigned long long)at[i].off);
    CHECK(stat_of(&f, "reads") == 8 && stat_of(&f, "bytes_read") == (long long)(4096 + 3 + 10 + 70000 + 4096 + 7 + 1 + size),
          "stats count the reads and their bytes");
    close(fd);
    srv_stop(&f);
}

static void write_then_read(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB seed=3"))
        return;
    int fd = nc_open(f.port, NULL), other = nc_open(f.port, NULL);
    uint8_t data[8192], want[16384];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    CHECK(nc_write(fd, 4096, sizeof data, data) == 0, "WRITE 8 KiB at 4096");
    nc_expected(want, 3, 0, sizeof want);
    memcpy(want + 4096, data, sizeof data);
    CHECK(read_equals(fd, 0, sizeof want, want), "READ 0..16 KiB: fill, the written 8 KiB, fill");
    CHECK(read_equals(other, 0, sizeof want, want), "another connection reads the same");
    CHECK(stat_of(&f, "writes") == 1 && stat_of(&f, "bytes_written") == 8192 && stat_of(&f, "requests") == 3,
          "stats: 1 write of 8192 bytes, 3 requests");
    close(fd);
    close(other);
    srv_stop(&f);
}

static void partial_page_write(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB seed=4"))
        return;
    int fd = nc_open(f.port, NULL);
    const uint64_t a = 3 * 4096 + 100, b = 5 * 4096 - 3;
    CHECK(nc_write(fd, a, 5, "ABCDE") == 0 && nc_write(fd, b, 10, "0123456789") == 0,
          "WRITE 5 bytes inside page 3, 10 bytes across pages 4 and 5");
    uint8_t want[3 * 4096];
    nc_expected(want, 4, 3 * 4096, sizeof want);
    memcpy(want + (a - 3 * 4096), "ABCDE", 5);
    memcpy(want + (b - 3 * 4096), "0123456789", 10);
    CHECK(read_equals(fd, 3 * 4096, sizeof want, want), "pages 3-5 keep their procedural bytes around the written ones");
    CHECK(read_equals(fd, b + 1, 4, want + (b + 1 - 3 * 4096)), "an unaligned READ inside the written bytes");
    close(fd);
    srv_stop(&f);
}

/* ---- commands ---- */

static void flush_and_disc(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB"))
        return;
    int fd = nc_open(f.port, NULL);
    uint64_t cookie;
    uint32_t err = 99;
    nc_request(fd, NBD_CMD_FLUSH, 0, 5, 0, 0);
    CHECK(nc_reply(fd, &cookie, &err, NULL, 0, 2000) == 0 && cookie == 5 && err == 0, "FLUSH: no error");
    nc_request(fd, NBD_CMD_FLUSH, 0, 6, 4096, 0);
    CHECK(nc_reply(fd, &cookie, &err, NULL, 0, 2000) == 0 && cookie == 6 && err == NBD_EINVAL, "FLUSH with an offset: EINVAL");
    CHECK(stat_of(&f, "flushes") == 1, "stats: one flush");
    uint8_t buf[4096];
    nc_request(fd, NBD_CMD_READ, 0, 7, 0, sizeof buf);
    nc_request(fd, NBD_CMD_DISC, 0, 8, 0, 0);
    CHECK(nc_reply(fd, &cookie, &err, buf, sizeof buf, 2000) == 0 && cookie == 7 && err == 0,
          "DISC right after a READ: the READ is still answered");
    CHECK(nc_closed(fd, 2000), "then the server closes");
    close(fd);
    srv_stop(&f);
}

static void out_of_range_gets_error_and_connection_stays(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB"))
        return;
    int fd = nc_open(f.port, NULL);
    uint64_t cookie;
    uint32_t err;
    struct {
        uint16_t type, flags;
        uint64_t off;
        uint32_t len, want;
        const char *what;
    } bad[] = {
        {NBD_CMD_READ, 0, MiB - 10, 20, NBD_EINVAL, "READ across the end"},
        {NBD_CMD_READ, 0, MiB + 4096, 1, NBD_EINVAL, "READ past the end"},
        {NBD_CMD_READ, 0, 0, 0, NBD_EINVAL, "READ of 0 bytes"},
        {NBD_CMD_READ, 0, 0, 32 * MiB + 1, NBD_EINVAL, "READ over the 32 MiB maximum"},
        {NBD_CMD_READ, 1 << 2 /* DF */, 0, 4096, NBD_EINVAL, "READ with a flag never advertised"},
        {NBD_CMD_TRIM, 0, 0, 4096, NBD_EINVAL, "TRIM (not advertised)"},
        {NBD_CMD_WRITE_ZEROES, 0, 0, 4096, NBD_EINVAL, "WRITE_ZEROES (not advertised)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nc_request(fd, bad[i].type, bad[i].flags, 100 + i, bad[i].off, bad[i].len);
        int rc = nc_reply(fd, &cookie, &err, NULL, 0, 2000);
        CHECK(rc == 0 && cookie == 100 + i && err == bad[i].want, "%s: error %u (want %u)", bad[i].what, err, bad[i].want);
    }
    static uint8_t payload[8192];
    nc_request(fd, NBD_CMD_WRITE, 0, 200, MiB - 100, sizeof payload);
    nc_send(fd, payload, sizeof payload);
    CHECK(nc_reply(fd, &cookie, &err, NULL, 0, 2000) == 0 && cookie == 200 && err == NBD_ENOSPC,
          "WRITE across the end: ENOSPC (as the protocol asks of a write), its payload consumed");
    CHECK(read_is_fill(fd, 1, 0, 4096) && read_is_fill(fd, 1, MiB - 100, 100), "the connection stays usable, nothing was written");
    CHECK(stat_of(&f, "errors") == 8 && stat_of(&f, "conns_closed_for_cause") == 0, "stats: 8 error replies, no connection closed");
    close(fd);
    srv_stop(&f);
}

static void violations_close(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB"))
        return;
    int fd = nc_open(f.port, NULL);
    uint8_t junk[28] = {0xde, 0xad, 0xbe, 0xef};
    nc_send(fd, junk, sizeof junk);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "bad request magic 0xdeadbeef"), "a request with a bad magic closes (logged)");
    close(fd);
    fd = nc_open(f.port, NULL);
    nc_request(fd, 9, 0, 1, 0, 0);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "unknown command 9"), "an unknown command closes (logged)");
    close(fd);
    fd = nc_open(f.port, NULL);
    nc_request(fd, NBD_CMD_WRITE, 0, 1, 0, 32 * MiB + 1);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "more than the maximum block"), "a WRITE over 32 MiB closes (logged)");
    close(fd);
    uint16_t hflags;
    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    nc_send(fd, "NOTHAVEOPT......", 16);
    CHECK(nc_closed(fd, 2000) && log_has(&f, "bad option magic"), "an option with a bad magic closes (logged)");
    close(fd);
    fd = nc_connect(f.port);
    nc_greeting(fd, &hflags);
    nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE);
    nc_option(fd, NBD_OPT_GO, NULL, 0); /* announces nothing too long, but: */
    uint32_t o, t, l;
    uint8_t d[256];
    nc_option_reply(fd, &o, &t, d, sizeof d, &l);
    uint8_t big[16];
    nbd_put64(big, NBD_IHAVEOPT);
    nbd_put32(big + 8, NBD_OPT_INFO);
    nbd_put32(big + 12, 1u << 20);
    nc_send(fd, big, sizeof big);
    CHECK(t == NBD_REP_ERR_INVALID && nc_closed(fd, 2000) && log_has(&f, "bytes of data (at most"),
          "an option announcing 1 MiB of data closes (logged)");
    close(fd);
    CHECK(stat_of(&f, "conns_closed_for_cause") == 5, "stats: 5 closed for cause (%lld)", stat_of(&f, "conns_closed_for_cause"));
    srv_stop(&f);
}

/* A violation behind a reply still being sent, and more requests behind it:
 * the reply goes out whole, the later requests are not run, then the
 * connection ends (for cause). Closing at once cut the reply short: a header
 * and part of its data, one more malformed message for the client. */
static void violation_behind_a_reply_in_flight(void)
{
    struct srv f;
    if (srv_start(&f, "region=64MiB seed=3"))
        return;
    int fd = nc_open(f.port, NULL);
    const uint32_t len = 24 * MiB; /* more than the sockets hold: the send blocks midway */
    nc_request(fd, NBD_CMD_READ, 0, 1, 4096, len);
    sleep_ms(300);
    uint8_t junk[28] = {0xde, 0xad, 0xbe, 0xef};
    nc_send(fd, junk, sizeof junk);
    sleep_ms(300);
    nc_request(fd, NBD_CMD_READ, 0, 2, 0, 4096); /* never run, never answered */
    nc_send(fd, junk, sizeof junk);
    sleep_ms(300);
    uint8_t *got = malloc(len), *want = malloc(len);
    nc_expected(want, 3, 4096, len);
    uint64_t cookie = 0;
    uint32_t err = 1;
    bool whole = nc_reply(fd, &cookie, &err, got, len, 10000) == 0 && cookie == 1 && err == 0 && !memcmp(got, want, len);
    CHECK(whole && nc_closed(fd, 2000), "the %u-byte reply before a bad magic arrives whole, then the connection closes", len);
    CHECK(log_has(&f, "bad request magic 0xdeadbeef") && stat_of(&f, "conns_closed_for_cause") == 1,
          "the violation is logged and counted as a close for cause (%lld)", stat_of(&f, "conns_closed_for_cause"));
    CHECK(stat_of(&f, "requests") == 1, "nothing after the violation was run (%lld requests)", stat_of(&f, "requests"));
    free(got);
    free(want);
    close(fd);
    srv_stop(&f);
}

/* ---- timing ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* n sequential 4 KiB READs on a fresh server with this rtt: round trips, sorted. */
#define RT_N 40
static void round_trips(int rtt_us, uint64_t *rt, long long *late_p50)
{
    char spec[64];
    snprintf(spec, sizeof spec, "region=1MiB rtt_us=%d", rtt_us);
    struct srv f;
    memset(rt, 0, RT_N * sizeof *rt);
    if (srv_start(&f, spec))
        return;
    int fd = nc_open(f.port, NULL);
    uint8_t buf[4096];
    for (int i = 0; i < RT_N; i++) {
        uint64_t t0 = fl_now_ns();
        if (nc_read(fd, (uint64_t)i * 4096, sizeof buf, buf))
            break;
        rt[i] = fl_now_ns() - t0;
    }
    *late_p50 = stat_of(&f, "late_p50_ns");
    close(fd);
    srv_stop(&f);
    qsort(rt, RT_N, sizeof *rt, cmp_u64);
}

static void rtt_reply_never_early(void)
{
    const uint64_t rtt = 3000000;
    uint64_t base[RT_N], delayed[RT_N];
    long long late0, late;
    round_trips(0, base, &late0);
    round_trips((int)(rtt / 1000), delayed, &late);
    /* Margin: the RTT-0 baseline's p95 (loopback, the client, the server's
     * own work) plus 1 ms for a wake-up on a busy machine. */
    uint64_t margin = base[RT_N * 95 / 100] + 1000000;
    CHECK(base[0] > 0 && delayed[0] >= rtt, "no reply before its RTT: fastest %llu us for an RTT of %llu us",
          (unsigned long long)delayed[0] / 1000, (unsigned long long)rtt / 1000);
    CHECK(delayed[RT_N / 2] <= rtt + margin, "median %llu us <= RTT + margin %llu us (baseline p50 %llu us, p95 %llu us)",
          (unsigned long long)delayed[RT_N / 2] / 1000, (unsigned long long)(rtt + margin) / 1000,
          (unsigned long long)base[RT_N / 2] / 1000, (unsigned long long)base[RT_N * 95 / 100] / 1000);
    CHECK(late >= 0 && (uint64_t)late <= margin, "the server's own p50 lateness %lld us is within the margin (RTT 0: %lld us)", late / 1000,
          late0 / 1000);
}

static void pipelined_requests_overlap(void)
{
    const uint64_t rtt = 50000000;
    const int n = 32;
    struct srv f;
    if (srv_start(&f, "region=1MiB rtt_us=50000"))
        return;
    int fd = nc_open(f.port, NULL);
    static uint8_t buf[4096];
    uint64_t t0 = fl_now_ns();
    for (int i = 0; i < n; i++)
        nc_request(fd, NBD_CMD_READ, 0, 1000 + i, (uint64_t)i * 4096, sizeof buf);
    bool in_order = true;
    for (int i = 0; i < n; i++) {
        uint64_t cookie;
        uint32_t err;
        in_order = in_order && nc_reply(fd, &cookie, &err, buf, sizeof buf, 5000) == 0 && cookie == 1000u + i && err == 0;
    }
    uint64_t took = fl_now_ns() - t0;
    CHECK(in_order, "%d pipelined READs answered in order", n);
    CHECK(took >= rtt && took < rtt + rtt / 2, "they took %llu ms at an RTT of %llu ms: about one RTT, not %d",
          (unsigned long long)took / 1000000, (unsigned long long)rtt / 1000000, n);
    close(fd);
    srv_stop(&f);
}

/* ---- misbehaving clients ---- */

static void missing_payload_and_idle_close(void)
{
    struct srv f;
    /* max_conns=1: one connection fills the server, so idleness is cut */
    if (srv_start(&f, "region=1MiB payload_timeout_ms=300 idle_timeout_ms=400 max_conns=1"))
        return;
    int fd = nc_open(f.port, NULL);
    static uint8_t part[100];
    uint64_t t0 = fl_now_ns();
    nc_request(fd, NBD_CMD_WRITE, 0, 1, 0, 4096);
    nc_send(fd, part, sizeof part);
    bool closed = nc_closed(fd, 3000);
    uint64_t took = (fl_now_ns() - t0) / 1000000;
    CHECK(closed && took >= 300 && took < 1000, "a WRITE whose payload stops is closed after %llu ms (timeout 300 ms)",
          (unsigned long long)took);
    CHECK(log_has(&f, "WRITE payload of 4096 bytes not received within 300 ms (3996 missing)"), "one log line says why");
    close(fd);

    fd = nc_open(f.port, NULL);
    t0 = fl_now_ns();
    closed = nc_closed(fd, 3000);
    took = (fl_now_ns() - t0) / 1000000;
    CHECK(closed && took >= 400 && took < 1100 && log_has(&f, "idle for 400 ms"),
          "an idle connection is closed after %llu ms (timeout 400 ms), logged", (unsigned long long)took);
    close(fd);
    CHECK(stat_of(&f, "conns_closed_for_cause") == 2, "stats: 2 closed for cause (%lld)", stat_of(&f, "conns_closed_for_cause"));
    srv_stop(&f);
}

/* After NBD_CMD_DISC the server sends its end of stream; it closes when the
 * client's arrives, or, from a client that never closes, after the handshake
 * timeout (the connection does not keep its slot for good). */
static void disc_then_the_client_closes_or_not(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB handshake_timeout_ms=500"))
        return;
    int fd = nc_open(f.port, NULL);
    nc_request(fd, NBD_CMD_DISC, 0, 1, 0, 0);
    bool eof = nc_closed(fd, 2000);
    close(fd);
    long long open = 1;
    for (int i = 0; i < 40 && (open = stat_of(&f, "conns_open")) > 0; i++)
        sleep_ms(5);
    CHECK(eof && open == 0, "DISC: the client sees the end of stream, closes, and the server closes at once (%lld open)", open);
    fd = nc_open(f.port, NULL);
    uint64_t t0 = fl_now_ns();
    nc_request(fd, NBD_CMD_DISC, 0, 1, 0, 0);
    eof = nc_closed(fd, 2000);
    for (int i = 0; i < 300 && (open = stat_of(&f, "conns_open")) > 0; i++)
        sleep_ms(10);
    uint64_t took = (fl_now_ns() - t0) / 1000000;
    CHECK(eof && open == 0 && took >= 500 && took < 2000,
          "DISC from a client that keeps its socket: closed by the server after %llu ms (timeout 500 ms)", (unsigned long long)took);
    CHECK(stat_of(&f, "conns_closed_for_cause") == 0, "neither is counted as closed for cause");
    close(fd);
    srv_stop(&f);
}

/* A client's quiet connection (its write-back connection, say) survives the
 * idle timeout while the server has slots to spare, and is served after. */
static void idle_connection_kept_while_slots_remain(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB idle_timeout_ms=200 max_conns=8"))
        return;
    int fd = nc_open(f.port, NULL);
    bool closed = nc_closed(fd, 700);
    CHECK(!closed, "with 1 of 8 slots used, a connection idle for 700 ms (timeout 200 ms) stays open");
    CHECK(!closed && read_is_fill(fd, 1, 0, 4096), "and a READ on it is answered");
    CHECK(!log_has(&f, "idle for"), "nothing logged");
    close(fd);
    srv_stop(&f);
}

/* A client that asks for 1.6 GB and reads nothing: the server stops reading
 * it at queue_cap; two such clients share total_cap. Then they read it all. */
static void unread_replies_stay_under_caps(void)
{
    struct srv f;
    if (srv_start(&f, "region=2GiB seed=8 total_cap=96MiB"))
        return;
    const int reads = 100;
    int fd[2];
    for (int c = 0; c < 2; c++) {
        fd[c] = nc_open(f.port, NULL);
        uint8_t page[4096];
        memset(page, 0xa0 + c, sizeof page);
        nc_request(fd[c], NBD_CMD_WRITE, 0, 1, (uint64_t)c * 4096, sizeof page);
        nc_send(fd[c], page, sizeof page);
        for (int i = 0; i < reads; i++)
            nc_request(fd[c], NBD_CMD_READ, 0, 2 + i, (uint64_t)i * 16 * MiB, 16 * MiB);
    }
    long long queued = 0, before;
    do { /* until the server has stopped taking requests in */
        before = queued;
        sleep_ms(200);
        queued = stat_of(&f, "queued_bytes");
    } while (queued != before);
    long long max_conn = stat_of(&f, "max_conn_queued_bytes"), max_total = stat_of(&f, "max_queued_bytes");
    CHECK(max_conn > 0 && max_conn <= 64 * (long long)MiB, "one connection's queued replies stay within queue_cap 64 MiB (%lld MiB)",
          max_conn >> 20);
    CHECK(max_total <= 96 * (long long)MiB && queued <= 96 * (long long)MiB,
          "all queued replies stay within total_cap 96 MiB (max %lld MiB, now %lld MiB)", max_total >> 20, queued >> 20);
    CHECK(stat_of(&f, "paused_reads") >= 2 && stat_of(&f, "requests") < 2 * (reads + 1), "reading stopped: %lld of %d requests taken in",
          stat_of(&f, "requests"), 2 * (reads + 1));
    uint8_t *buf = malloc(16 * MiB);
    for (int c = 0; c < 2; c++) {
        uint64_t cookie;
        uint32_t err;
        bool ok = nc_reply(fd[c], &cookie, &err, NULL, 0, 10000) == 0 && cookie == 1 && err == 0;
        for (int i = 0; i < reads && ok; i++) {
            ok = nc_reply(fd[c], &cookie, &err, buf, 16 * MiB, 20000) == 0 && cookie == 2u + i && err == 0;
            if (i == 0) { /* its own page written; the other client's may or may not be yet */
                uint8_t want[4096], rest[8192];
                memset(want, 0xa0 + c, sizeof want);
                nc_expected(rest, 8, 8192, sizeof rest);
                ok = ok && !memcmp(buf + c * 4096, want, sizeof want) && !memcmp(buf + 8192, rest, sizeof rest);
            }
        }
        CHECK(ok, "client %d then reads all %d replies, in order, its write in the first", c, reads + 1);
        close(fd[c]);
    }
    free(buf);
    srv_stop(&f);
}

static int raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return -1;
    if (rl.rlim_cur >= want)
        return 0;
    if (rl.rlim_max < want)
        return -1;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl);
}

/* 1,100 connections that never finish their handshake, past the 1024 slots:
 * each newcomer past the cap takes the slot of the oldest, so a well-behaved
 * client is served at once; the handshake timeout (a minute) frees none here. */
static void idle_connections_cannot_exhaust(void)
{
    enum { IDLE = 1100, CAP = 1024 };
    if (raise_fd_limit(IDLE + CAP + 64)) {
        unit_skip("needs %d descriptors (RLIMIT_NOFILE's hard limit is lower)", IDLE + CAP + 64);
        return;
    }
    struct srv f;
    if (srv_start(&f, "region=1MiB handshake_timeout_ms=60000"))
        return;
    static int idle[IDLE];
    int opened = 0;
    for (int i = 0; i < IDLE; i++)
        if ((idle[i] = nc_connect(f.port)) >= 0)
            opened++;
    for (int i = 0; i < 300 && stat_of(&f, "conns_accepted") + stat_of(&f, "conns_refused") < IDLE; i++)
        sleep_ms(10);
    long long refused = stat_of(&f, "conns_refused"), open_now = stat_of(&f, "conns_open");
    long long displaced = stat_of(&f, "conns_closed_for_cause");
    CHECK(opened == IDLE && refused == 0 && open_now == CAP && displaced == IDLE - CAP,
          "%d idle connections opened: %lld refused, %lld open, %lld displaced (max_conns %d)", opened, refused, open_now, displaced, CAP);
    CHECK(log_has(&f, "closed: handshake not finished after") && log_has(&f, "its slot given to 127.0.0.1:"),
          "each displacement is logged, naming the newcomer");
    CHECK(nc_closed(idle[0], 2000) && nc_closed(idle[IDLE - CAP - 1], 2000) && !nc_closed(idle[IDLE - CAP], 200),
          "the oldest ones were displaced, the ones after them kept");
    int fd = nc_open(f.port, NULL);
    CHECK(fd >= 0 && read_is_fill(fd, 1, 0, 4096), "a well-behaved client is served at its first try, behind %d idle connections", IDLE);
    CHECK(stat_of(&f, "conns_refused") == 0 && stat_of(&f, "conns_closed_for_cause") == displaced + 1,
          "its slot was the oldest idle connection's (%lld displaced)", stat_of(&f, "conns_closed_for_cause"));
    if (fd >= 0)
        close(fd);
    for (int i = 0; i < IDLE; i++)
        if (idle[i] >= 0)
            close(idle[i]);
    srv_stop(&f);
}

/* A connection that never finishes its handshake is closed at the handshake
 * timeout even while the server has slots to spare. */
static void unfinished_handshake_times_out(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB handshake_timeout_ms=300"))
        return;
    int fd = nc_connect(f.port);
    uint64_t t0 = fl_now_ns();
    bool closed = nc_closed(fd, 3000);
    uint64_t took = (fl_now_ns() - t0) / 1000000;
    CHECK(closed && took >= 250 && took < 2000 && log_has(&f, "handshake not finished within 300 ms"),
          "closed after %llu ms (timeout 300 ms), logged", (unsigned long long)took);
    CHECK(stat_of(&f, "conns_closed_for_cause") == 1, "counted as closed for cause (%lld)", stat_of(&f, "conns_closed_for_cause"));
    close(fd);
    srv_stop(&f);
}

/* At max_conns, a connection past its handshake is never displaced (one still
 * in it gives its slot up); when every slot is past it, the newcomer is
 * refused (logged) and the others are still served. */
static void served_connections_are_never_displaced(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB max_conns=2"))
        return;
    int served = nc_open(f.port, NULL), half = nc_connect(f.port);
    for (int i = 0; i < 100 && stat_of(&f, "conns_open") < 2; i++)
        sleep_ms(10);
    int newcomer = nc_open(f.port, NULL);
    CHECK(newcomer >= 0 && nc_closed(half, 2000), "with both slots used, a newcomer takes the slot of the one in its handshake");
    int refused = nc_open(f.port, NULL); /* the server counts a refusal before it closes */
    CHECK(refused < 0 && stat_of(&f, "conns_refused") == 1 && log_has(&f, "refused: 2 connections open (max_conns)"),
          "with both slots past their handshake, the next is refused, logged");
    CHECK(read_is_fill(served, 1, 0, 4096) && read_is_fill(newcomer, 1, 4096, 4096), "both served connections are still answered");
    if (refused >= 0)
        close(refused);
    close(newcomer);
    close(half);
    close(served);
    srv_stop(&f);
}

/* A connection that has finished (NBD_CMD_DISC: its end of stream sent) and
 * keeps its socket gives its slot up to a newcomer at the cap; it is not
 * counted as closed for cause. */
static void finished_connection_gives_its_slot_up(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB max_conns=2"))
        return;
    int served = nc_open(f.port, NULL), done = nc_open(f.port, NULL);
    nc_request(done, NBD_CMD_DISC, 0, 1, 0, 0);
    bool eof = nc_closed(done, 2000); /* the server's end of stream; the socket stays open here */
    int newcomer = nc_open(f.port, NULL);
    CHECK(eof && newcomer >= 0 && log_has(&f, "closed: finished") && stat_of(&f, "conns_refused") == 0,
          "at the cap, a newcomer takes the slot of a finished connection that keeps its socket");
    CHECK(stat_of(&f, "conns_closed_for_cause") == 0, "which is not counted as closed for cause");
    CHECK(read_is_fill(served, 1, 0, 4096) && read_is_fill(newcomer, 1, 0, 4096), "both served connections are answered");
    if (newcomer >= 0)
        close(newcomer);
    close(done);
    close(served);
    srv_stop(&f);
}

/* At RTT > 0 the server holds its option replies too, so a real handshake
 * spends most of its time waiting on it: such a connection keeps its slot. */
static void handshake_with_a_held_reply_keeps_its_slot(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB max_conns=1 rtt_us=1000000"))
        return;
    uint16_t hflags;
    int fd = nc_connect(f.port);
    bool asked = fd >= 0 && !nc_greeting(fd, &hflags) && !nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) &&
                 !nc_option(fd, NBD_OPT_LIST, NULL, 0);
    sleep_ms(100); /* the server has read the option; its reply is held for 1 s */
    int late = nc_connect(f.port);
    bool refused = late >= 0 && nc_closed(late, 500);
    uint32_t opt = 0, type = 0, len = 0;
    static uint8_t data[4096];
    bool answered = asked && !nc_option_reply(fd, &opt, &type, data, sizeof data, &len) && opt == NBD_OPT_LIST;
    CHECK(refused && stat_of(&f, "conns_refused") == 1 && log_has(&f, "refused: 1 connections open (max_conns)"),
          "a newcomer is refused while the one slot's handshake waits on a held reply");
    CHECK(answered && stat_of(&f, "conns_closed_for_cause") == 0, "and that handshake goes on: its NBD_OPT_LIST reply arrives");
    if (late >= 0)
        close(late);
    if (fd >= 0)
        close(fd);
    srv_stop(&f);
}

/* ---- size, stop, spec ---- */

static long rss_kib(void)
{
    FILE *fp = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (fp) {
        if (fscanf(fp, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(fp);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void terabyte_region_costs_nothing(void)
{
    const uint64_t tib = 1ull << 40;
    static uint8_t want[MiB], got[MiB]; /* the client's buffers, resident before the baseline */
    memset(want, 1, sizeof want);
    memset(got, 1, sizeof got);
    long rss0 = rss_kib();
    struct srv f;
    if (srv_start(&f, "region=1TiB seed=11"))
        return;
    struct nc_info info;
    int fd = nc_open(f.port, &info);
    CHECK(fd >= 0 && info.size == tib, "GO: size 1 TiB (%llu)", (unsigned long long)info.size);
    fl_fill(want, MiB, 11, tib - MiB);
    CHECK(nc_read(fd, tib - MiB, (uint32_t)MiB, got) == 0 && !memcmp(got, want, MiB), "a 1 MiB READ at the end equals fill(11, offset)");
    CHECK(nc_read(fd, tib - 4096, 4096, got) == 0 && !memcmp(got, want + MiB - 4096, 4096) && nc_read(fd, tib - 1, 1, got) == 0 &&
              got[0] == want[MiB - 1],
          "so do the last page and the last byte");
    uint8_t page[4096];
    memset(page, 0x5a, sizeof page);
    CHECK(nc_write(fd, tib - 4096, sizeof page, page) == 0 && read_equals(fd, tib - 4096, sizeof page, page),
          "a WRITE at the end reads back");
    long grew = rss_kib() - rss0;
    CHECK(grew < 4096, "the process grew by %ld KiB (< 4 MiB) for a 1 TiB region", grew);
    close(fd);
    srv_stop(&f);
}

static void stop_with_everything_pending(void)
{
    struct srv f;
    if (srv_start(&f, "region=1GiB rtt_us=1000000"))
        return;
    uint16_t hflags;
    int mid = nc_connect(f.port); /* in its handshake */
    nc_greeting(mid, &hflags);
    int held = nc_open(f.port, NULL); /* a reply held for its RTT (the handshake also takes one) */
    nc_request(held, NBD_CMD_READ, 0, 1, 0, 4096);
    int partial = nc_open(f.port, NULL); /* a WRITE's payload half there */
    nc_request(partial, NBD_CMD_WRITE, 0, 1, 0, 8192);
    nc_send(partial, "half", 4);
    int flood = nc_open(f.port, NULL); /* replies queued to the cap */
    for (int i = 0; i < 20; i++)
        nc_request(flood, NBD_CMD_READ, 0, 1, (uint64_t)i * 16 * MiB, 16 * MiB);
    sleep_ms(200);
    CHECK(mid >= 0 && held >= 0 && partial >= 0 && flood >= 0 && stat_of(&f, "queued_bytes") > 0, "four clients, replies pending");
    uint64_t t0 = fl_now_ns();
    fl_nbd_stop(f.s);
    uint64_t took = (fl_now_ns() - t0) / 1000000;
    CHECK(took < 500, "stop returns at once (%llu ms), not after the 1 s RTT", (unsigned long long)took);
    CHECK(nc_closed(mid, 1000) && nc_closed(held, 1000) && nc_closed(partial, 1000) && nc_closed(flood, 1000),
          "every client sees its connection closed");
    close(mid), close(held), close(partial), close(flood);
    srv_check_gone(&f);
}

static void bad_specs_refused(void)
{
    struct srv f;
    if (srv_start(&f, "region=1MiB"))
        return;
    char taken[64], json[2048];
    snprintf(taken, sizeof taken, "port=%d", f.port);
    CHECK(fl_nbd_stats(f.s, json, sizeof json) == 0 && strstr(json, "\"listen\":\"127.0.0.1\""),
          "the default listen address is loopback (%s)", json);
    CHECK(fl_nbd_stats(f.s, json, 10) == -1, "stats into a short buffer: -1 (%s)", json);
    struct {
        const char *spec, *want;
    } bad[] = {
        {"region=0", "bad value for 'region'"},
        {"listen=example.com", "bad value for 'listen'"},
        {"bogus=1", "bad value for 'bogus'"},
        {"justaword", "expected key=value"},
        {"rtt_us=20000000", "bad value for 'rtt_us'"},
        {"max_conns=0", "bad value for 'max_conns'"},
        {"rx_stamps=2", "bad value for 'rx_stamps'"},
        {"cpu=4096", "cpu must be a CPU this process may run on"},
        {"queue_cap=1MiB", "less than the largest reply"},
        {"total_cap=32MiB", "less than queue_cap"},
        {"log_fd=999", "not an open descriptor"},
        {taken, "cannot listen on 127.0.0.1 port"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char err[256] = "";
        fl_nbd_server *s = fl_nbd_start(bad[i].spec, err, sizeof err);
        CHECK(!s && strstr(err, bad[i].want), "'%s' is refused: %s", bad[i].spec, err);
        fl_nbd_stop(s);
    }
    fl_nbd_stop(NULL);
    CHECK(fl_nbd_port(NULL) == -1 && fl_nbd_stats(NULL, json, sizeof json) == -1, "NULL is allowed");
    srv_stop(&f);
}

/* The server-side socket of the connection whose client end is client_fd
 * (this process hosts the server): found among this process's descriptors. */
static int server_side_of(int client_fd, int port)
{
    struct sockaddr_in mine, peer, local;
    socklen_t len = sizeof mine;
    if (getsockname(client_fd, (struct sockaddr *)&mine, &len))
        return -1;
    for (int fd = 0; fd < 4096; fd++) {
        socklen_t plen = sizeof peer, llen = sizeof local;
        if (fd != client_fd && getpeername(fd, (struct sockaddr *)&peer, &plen) == 0 && peer.sin_family == AF_INET &&
            peer.sin_port == mine.sin_port && getsockname(fd, (struct sockaddr *)&local, &llen) == 0 && ntohs(local.sin_port) == port)
            return fd;
    }
    return -1;
}

/* The kernel's receive stamp costs each round trip something, and at RTT 0 a
 * reply is due at once whatever its stamp: the server asks for stamps only
 * where a deadline counts from them, unless rx_stamps says otherwise. */
static void rx_stamps_only_where_a_deadline_counts(void)
{
    static const struct {
        const char *spec;
        int want;
    } cases[] = {
        {"region=1MiB", 0},
        {"region=1MiB rtt_us=200", 1},
        {"region=1MiB rx_stamps=1", 1},
        {"region=1MiB rtt_us=200 rx_stamps=0", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        struct srv f;
        if (srv_start(&f, cases[i].spec))
            return;
        int fd = nc_open(f.port, NULL), on = -1;
        socklen_t len = sizeof on;
        int theirs = fd >= 0 ? server_side_of(fd, f.port) : -1;
        if (theirs >= 0 && getsockopt(theirs, SOL_SOCKET, SO_TIMESTAMPNS, &on, &len))
            on = -1;
        CHECK(theirs >= 0 && on == cases[i].want, "%s: the server's socket has SO_TIMESTAMPNS %d (want %d)", cases[i].spec, on,
              cases[i].want);
        CHECK(fd >= 0 && read_is_fill(fd, 1, 0, 4096), "%s: a READ is answered with fill", cases[i].spec);
        if (fd >= 0)
            close(fd);
        srv_stop(&f);
    }
}

/* At RTT 0 the event loop sends each reply itself: the sender thread must not
 * be woken for it (a wake-up per reply is a context switch per request). At
 * RTT > 0 it is the sender that sends, so it is woken (it spins instead of
 * waiting when the next deadline is near, so not once per reply). */
static void rtt0_replies_do_not_wake_the_sender(void)
{
    for (int rtt = 0; rtt < 2; rtt++) {
        struct srv f;
        if (srv_start(&f, rtt ? "region=1MiB rtt_us=200" : "region=1MiB"))
            return;
        int fd = nc_open(f.port, NULL);
        long long before = stat_of(&f, "sender_wakeups");
        bool ok = fd >= 0;
        for (int i = 0; ok && i < 200; i++)
            ok = read_is_fill(fd, 1, (uint64_t)(i % 256) * 4096, 4096);
        long long woken = stat_of(&f, "sender_wakeups") - before;
        CHECK(ok, "rtt_us=%d: 200 READs of 4 KiB answered with fill", rtt ? 200 : 0);
        if (rtt)
            CHECK(woken >= 1, "rtt_us=200: the sender was woken to send the replies (%lld wake-ups for 200)", woken);
        else
            CHECK(woken <= 5, "rtt_us=0: the sender was not woken for replies the loop sent (%lld wake-ups for 200)", woken);
        if (fd >= 0)
            close(fd);
        srv_stop(&f);
    }
}

/* Threads of this process whose allowed CPUs are exactly `list` (Cpus_allowed_list). */
static int threads_allowed_on(const char *list)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    char want[64];
    snprintf(want, sizeof want, "Cpus_allowed_list:\t%s\n", list);
    for (struct dirent *e; d && (e = readdir(d));) {
        char path[300], buf[4096];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/status", e->d_name);
        FILE *f = fopen(path, "re");
        size_t k = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
        if (f)
            fclose(f);
        buf[k] = 0;
        n += strstr(buf, want) != NULL;
    }
    if (d)
        closedir(d);
    return n;
}

/* cpu=N pins the server's two threads (event loop, sender) there, and it still serves. */
static void cpu_pins_the_server_threads(void)
{
    char last[24];
    snprintf(last, sizeof last, "%ld", sysconf(_SC_NPROCESSORS_ONLN) - 1);
    int before = threads_allowed_on(last);
    struct srv f;
    char spec[64];
    snprintf(spec, sizeof spec, "region=1MiB cpu=%s", last);
    if (srv_start(&f, spec))
        return;
    int pinned = threads_allowed_on(last) - before;
    int fd = nc_open(f.port, NULL);
    CHECK(pinned == 2, "%s: its event loop and sender threads allowed on CPU %s only (%d threads)", spec, last, pinned);
    CHECK(fd >= 0 && read_is_fill(fd, 1, 0, 4096), "%s: a READ is answered with fill", spec);
    if (fd >= 0)
        close(fd);
    srv_stop(&f);
}

/* The server's deadlines start at the kernel's receive stamp (CLOCK_REALTIME)
 * moved onto CLOCK_MONOTONIC. A stamp taken after a monotonic read must never
 * convert to a time before it, even when the converting thread is preempted
 * or interrupted between its own clock reads: a thread competing for the same
 * CPU makes that happen many times over 300 ms (a conversion that read its
 * monotonic time before REALTIME made replies leave early by the preemption). */
static atomic_bool spin_stop;
static void *spin(void *arg)
{
    while (!atomic_load_explicit(&spin_stop, memory_order_relaxed))
        ;
    return arg;
}

static void rx_stamp_never_early(void)
{
    cpu_set_t one, was;
    CPU_ZERO(&one);
    int cpu = 0;
    if (sched_getaffinity(0, sizeof was, &was)) {
        CHECK(0, "sched_getaffinity: %s", strerror(errno));
        return;
    }
    while (cpu < CPU_SETSIZE && !CPU_ISSET(cpu, &was))
        cpu++;
    CPU_SET(cpu, &one); /* the first CPU this test may use: both threads on it */
    if (sched_setaffinity(0, sizeof one, &one)) {
        CHECK(0, "sched_setaffinity to CPU %d: %s", cpu, strerror(errno));
        return;
    }
    atomic_store(&spin_stop, false);
    pthread_t t;
    bool spinning = !pthread_create(&t, NULL, spin, NULL); /* it inherits this thread's CPU */
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } cbuf;
    uint64_t n = 0, early = 0, worst = 0, end = fl_now() + 300000000ull;
    while (fl_now() < end) {
        for (int k = 0; k < 1000; k++, n++) {
            struct msghdr m = {.msg_control = cbuf.buf, .msg_controllen = sizeof cbuf.buf};
            struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
            cm->cmsg_level = SOL_SOCKET;
            cm->cmsg_type = SCM_TIMESTAMPNS;
            cm->cmsg_len = CMSG_LEN(sizeof(struct timespec));
            uint64_t before = fl_now();
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            memcpy(CMSG_DATA(cm), &ts, sizeof ts);
            uint64_t at = fl_rx_time(&m);
            if (at < before) {
                early++;
                worst = before - at > worst ? before - at : worst;
            }
        }
    }
    atomic_store(&spin_stop, true);
    if (spinning)
        pthread_join(t, NULL);
    sched_setaffinity(0, sizeof was, &was);
    CHECK(early == 0, "no receive stamp converts to before a monotonic read taken ahead of it (%llu of %llu early, by up to %llu ns)",
          (unsigned long long)early, (unsigned long long)n, (unsigned long long)worst);
}

static const struct unit_test tests[] = {
    {"cpu-pins-the-server-threads", 0, cpu_pins_the_server_threads},
    {"rtt0-replies-do-not-wake-the-sender", 0, rtt0_replies_do_not_wake_the_sender},
    {"handshake-via-export-name", 0, handshake_via_export_name},
    {"handshake-via-go-with-block-sizes", 0, handshake_via_go_with_block_sizes},
    {"description-names-the-seed", 0, description_names_the_seed},
    {"reads-equal-fill", 0, reads_equal_fill},
    {"write-then-read", 0, write_then_read},
    {"partial-page-write", 0, partial_page_write},
    {"flush-and-disc", 0, flush_and_disc},
    {"out-of-range-gets-error-and-connection-stays", 0, out_of_range_gets_error_and_connection_stays},
    {"violations-close", 0, violations_close},
    {"violation-behind-a-reply-in-flight", 0, violation_behind_a_reply_in_flight},
    {"rtt-reply-never-early", 0, rtt_reply_never_early},
    {"rx-stamps-only-where-a-deadline-counts", 0, rx_stamps_only_where_a_deadline_counts},
    {"rx-stamp-never-early", 0, rx_stamp_never_early},
    {"pipelined-requests-overlap", 0, pipelined_requests_overlap},
    {"missing-payload-and-idle-close", 0, missing_payload_and_idle_close},
    {"disc-then-the-client-closes-or-not", 0, disc_then_the_client_closes_or_not},
    {"idle-connection-kept-while-slots-remain", 0, idle_connection_kept_while_slots_remain},
    {"unread-replies-stay-under-caps", 0, unread_replies_stay_under_caps},
    {"idle-connections-cannot-exhaust", 0, idle_connections_cannot_exhaust},
    {"unfinished-handshake-times-out", 0, unfinished_handshake_times_out},
    {"served-connections-are-never-displaced", 0, served_connections_are_never_displaced},
    {"finished-connection-gives-its-slot-up", 0, finished_connection_gives_its_slot_up},
    {"handshake-with-a-held-reply-keeps-its-slot", 0, handshake_with_a_held_reply_keeps_its_slot},
    {"terabyte-region-costs-nothing", 0, terabyte_region_costs_nothing},
    {"stop-with-everything-pending", 0, stop_with_everything_pending},
    {"bad-specs-refused", 0, bad_specs_refused},
};

static void *nothing(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    /* ThreadSanitizer starts a helper thread at the first pthread_create:
     * start one first, so every test's baseline holds it. */
    pthread_t t;
    if (!pthread_create(&t, NULL, nothing, NULL))
        pthread_join(t, NULL);
    return unit_main(argc, argv, tests, UNIT_COUNT(tests));
}
