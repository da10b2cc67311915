/* A small, strict NBD client for the server's tests (nbd_server_test.c):
 * blocking sockets with poll timeouts, every field checked by the caller.
 * Numbers as in native/src/server/nbd_proto.h. */
#ifndef FAULTLAB_NBD_CLIENT_H
#define FAULTLAB_NBD_CLIENT_H
#include "../include/faultlab.h"
#include "../src/server/nbd_proto.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int nc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&a, sizeof a)) {
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int nc_send(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Exactly n bytes within timeout_ms (in all), or -1 (end of stream, error, timeout). */
static int nc_recv(int fd, void *buf, size_t n, int timeout_ms)
{
    uint8_t *p = buf;
    uint64_t end = fl_now_ns() + (uint64_t)timeout_ms * 1000000;
    while (n) {
        uint64_t now = fl_now_ns();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (now >= end || poll(&pf, 1, (int)((end - now) / 1000000) + 1) != 1)
            return -1;
        ssize_t k = recv(fd, p, n, 0);
        if (k <= 0) {
            if (k < 0 && errno == EINTR)
                continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* The server closed (end of stream or reset) within timeout_ms; bytes before it are skipped. */
static bool nc_closed(int fd, int timeout_ms)
{
    uint8_t junk[4096];
    uint64_t end = fl_now_ns() + (uint64_t)timeout_ms * 1000000;
    for (;;) {
        uint64_t now = fl_now_ns();
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (now >= end || poll(&pf, 1, (int)((end - now) / 1000000) + 1) != 1)
            return false;
        ssize_t k = recv(fd, junk, sizeof junk, 0);
        if (k == 0 || (k < 0 && errno != EINTR && errno != EAGAIN))
            return true;
    }
}

/* The greeting: 0 when both magics are right; *hflags gets the handshake flags. */
static int nc_greeting(int fd, uint16_t *hflags)
{
    uint8_t g[NBD_GREETING_BYTES];
    if (nc_recv(fd, g, sizeof g, 2000) || nbd_get64(g) != NBD_MAGIC || nbd_get64(g + 8) != NBD_IHAVEOPT)
        return -1;
    *hflags = nbd_get16(g + 16);
    return 0;
}

static int nc_client_flags(int fd, uint32_t flags)
{
    uint8_t b[4];
    nbd_put32(b, flags);
    return nc_send(fd, b, 4);
}

static int nc_option(int fd, uint32_t opt, const void *data, uint32_t len)
{
    uint8_t h[NBD_OPT_HEADER_BYTES];
    nbd_put64(h, NBD_IHAVEOPT);
    nbd_put32(h + 8, opt);
    nbd_put32(h + 12, len);
    return nc_send(fd, h, sizeof h) || (len && nc_send(fd, data, len)) ? -1 : 0;
}

/* One option reply: its option, type and data (at most cap bytes). */
static int nc_option_reply(int fd, uint32_t *opt, uint32_t *type, uint8_t *data, uint32_t cap, uint32_t *len)
{
    uint8_t h[NBD_OPT_REPLY_BYTES];
    if (nc_recv(fd, h, sizeof h, 2000) || nbd_get64(h) != NBD_REP_MAGIC)
        return -1;
    *opt = nbd_get32(h + 8);
    *type = nbd_get32(h + 12);
    *len = nbd_get32(h + 16);
    if (*len > cap)
        return -1;
    return *len ? nc_recv(fd, data, *len, 2000) : 0;
}

/* NBD_OPT_INFO or NBD_OPT_GO for name, asking for the block sizes: the export's
 * size, transmission flags and block sizes from its replies, until NBD_REP_ACK.
 * Returns the final reply type (NBD_REP_ACK or an error), or 0 on a broken stream. */
struct nc_info {
    uint64_t size;
    uint16_t tflags;
    uint32_t min, pref, max;
};
static uint32_t nc_info_go(int fd, uint32_t opt, const char *name, struct nc_info *info)
{
    uint8_t d[512];
    uint32_t n = (uint32_t)strlen(name);
    nbd_put32(d, n);
    memcpy(d + 4, name, n);
    nbd_put16(d + 4 + n, 1);
    nbd_put16(d + 6 + n, NBD_INFO_BLOCK_SIZE);
    if (nc_option(fd, opt, d, 8 + n))
        return 0;
    memset(info, 0, sizeof *info);
    for (;;) {
        uint32_t ropt, type, len;
        if (nc_option_reply(fd, &ropt, &type, d, sizeof d, &len) || ropt != opt)
            return 0;
        if (type != NBD_REP_INFO)
            return type;
        if (len == 12 && nbd_get16(d) == NBD_INFO_EXPORT) {
            info->size = nbd_get64(d + 2);
            info->tflags = nbd_get16(d + 10);
        } else if (len == 14 && nbd_get16(d) == NBD_INFO_BLOCK_SIZE) {
            info->min = nbd_get32(d + 2);
            info->pref = nbd_get32(d + 6);
            info->max = nbd_get32(d + 10);
        }
    }
}

/* Connect and enter transmission through NBD_OPT_GO: the fd, or -1. */
static int nc_open(int port, struct nc_info *info)
{
    struct nc_info ignored;
    uint16_t hflags;
    int fd = nc_connect(port);
    if (fd < 0)
        return -1;
    if (nc_greeting(fd, &hflags) || nc_client_flags(fd, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES) ||
        nc_info_go(fd, NBD_OPT_GO, "", info ? info : &ignored) != NBD_REP_ACK) {
        close(fd);
        return -1;
    }
    return fd;
}

static int nc_request(int fd, uint16_t type, uint16_t flags, uint64_t cookie, uint64_t off, uint32_t len)
{
    uint8_t r[NBD_REQUEST_BYTES];
    nbd_put32(r, NBD_REQUEST_MAGIC);
    nbd_put16(r + 4, flags);
    nbd_put16(r + 6, type);
    nbd_put64(r + 8, cookie);
    nbd_put64(r + 16, off);
    nbd_put32(r + 24, len);
    return nc_send(fd, r, sizeof r);
}

/* A simple reply: its error into *err, its cookie into *cookie; with data and
 * no error, also len bytes of payload. -1 on a broken stream or a bad magic. */
static int nc_reply(int fd, uint64_t *cookie, uint32_t *err, void *data, uint32_t len, int timeout_ms)
{
    uint8_t h[NBD_REPLY_BYTES];
    if (nc_recv(fd, h, sizeof h, timeout_ms) || nbd_get32(h) != NBD_SIMPLE_REPLY_MAGIC)
        return -1;
    *err = nbd_get32(h + 4);
    *cookie = nbd_get64(h + 8);
    return data && !*err ? nc_recv(fd, data, len, timeout_ms) : 0;
}

/* READ [off, off+len) into buf: the reply's error, or -1. */
static int nc_read(int fd, uint64_t off, uint32_t len, void *buf)
{
    static uint64_t next_cookie = 1;
    uint64_t cookie = next_cookie++, got;
    uint32_t err;
    if (nc_request(fd, NBD_CMD_READ, 0, cookie, off, len) || nc_reply(fd, &got, &err, buf, len, 5000) || got != cookie)
        return -1;
    return (int)err;
}

/* WRITE buf to [off, off+len): the reply's error, or -1. */
static int nc_write(int fd, uint64_t off, uint32_t len, const void *buf)
{
    uint64_t got;
    uint32_t err;
    if (nc_request(fd, NBD_CMD_WRITE, 0, 77, off, len) || nc_send(fd, buf, len) || nc_reply(fd, &got, &err, NULL, 0, 5000) || got != 77)
        return -1;
    return (int)err;
}

/* What [off, off+len) holds when never written: fl_fill(seed, ...) at any byte offset. */
static void nc_expected(uint8_t *out, uint64_t seed, uint64_t off, uint64_t len)
{
    uint64_t start = off & ~7ull, words = (off + len - start + 7) / 8;
    uint64_t *tmp = malloc(words * 8);
    fl_fill(tmp, words * 8, seed, start);
    memcpy(out, (uint8_t *)tmp + (off - start), len);
    free(tmp);
}
#endif
