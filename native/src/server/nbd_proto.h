/* The NBD protocol's numbers (NetworkBlockDevice/nbd doc/proto.md) and
 * big-endian helpers: everything on the wire is in network byte order. Only
 * what faultlab speaks is here: the fixed newstyle handshake and simple
 * replies (no structured replies, no extended headers, no TLS). The server
 * and the client (sources/tcp.c) share it. */
#ifndef FAULTLAB_NBD_PROTO_H
#define FAULTLAB_NBD_PROTO_H
#include <stdint.h>

#define NBD_MAGIC              0x4e42444d41474943ull /* "NBDMAGIC" */
#define NBD_IHAVEOPT           0x49484156454f5054ull /* "IHAVEOPT" */
#define NBD_REP_MAGIC          0x3e889045565a9ull /* option replies */
#define NBD_REQUEST_MAGIC      0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC 0x67446698u

/* Handshake flags (server) and client flags. */
#define NBD_FLAG_FIXED_NEWSTYLE   (1u << 0)
#define NBD_FLAG_NO_ZEROES        (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0)
#define NBD_FLAG_C_NO_ZEROES      (1u << 1)

/* Transmission flags. */
#define NBD_FLAG_HAS_FLAGS  (1u << 0)
#define NBD_FLAG_SEND_FLUSH (1u << 2)

enum nbd_opt {
    NBD_OPT_EXPORT_NAME = 1,
    NBD_OPT_ABORT = 2,
    NBD_OPT_LIST = 3,
    NBD_OPT_STARTTLS = 5,
    NBD_OPT_INFO = 6,
    NBD_OPT_GO = 7,
    NBD_OPT_STRUCTURED_REPLY = 8,
};

#define NBD_REP_ACK         1u
#define NBD_REP_SERVER      2u
#define NBD_REP_INFO        3u
#define NBD_REP_ERR_UNSUP   (0x80000000u + 1)
#define NBD_REP_ERR_INVALID (0x80000000u + 3)
#define NBD_REP_ERR_UNKNOWN (0x80000000u + 6)

#define NBD_INFO_EXPORT     0u
#define NBD_INFO_BLOCK_SIZE 3u

enum nbd_cmd {
    NBD_CMD_READ = 0,
    NBD_CMD_WRITE = 1,
    NBD_CMD_DISC = 2,
    NBD_CMD_FLUSH = 3,
    NBD_CMD_TRIM = 4,
    NBD_CMD_CACHE = 5,
    NBD_CMD_WRITE_ZEROES = 6,
    NBD_CMD_BLOCK_STATUS = 7, /* the last command the protocol defines without extensions */
};

#define NBD_EPERM  1u
#define NBD_ENOMEM 12u
#define NBD_EINVAL 22u
#define NBD_ENOSPC 28u

#define NBD_GREETING_BYTES   18u /* NBDMAGIC, IHAVEOPT, handshake flags */
#define NBD_OPT_HEADER_BYTES 16u
#define NBD_OPT_REPLY_BYTES  20u
#define NBD_REQUEST_BYTES    28u
#define NBD_REPLY_BYTES      16u

/* Block sizes advertised with NBD_INFO_BLOCK_SIZE: any byte is addressable,
 * a page is preferred, and 32 MiB is the most one request may move. */
#define NBD_MIN_BLOCK  1u
#define NBD_PREF_BLOCK 4096u
#define NBD_MAX_BLOCK  (32u << 20)

/* What the client (sources/tcp.c) meets from other servers besides: names it
 * reports, and replies it refuses. */
#define NBD_OLDSTYLE_MAGIC          0x00420281861253ull
#define NBD_STRUCTURED_REPLY_MAGIC  0x668e33efu
#define NBD_FLAG_READ_ONLY          (1u << 1)
#define NBD_INFO_NAME               1u
#define NBD_INFO_DESCRIPTION        2u
#define NBD_REP_ERR_POLICY          (0x80000000u + 2)
#define NBD_REP_ERR_PLATFORM        (0x80000000u + 4)
#define NBD_REP_ERR_TLS_REQD        (0x80000000u + 5)
#define NBD_REP_ERR_SHUTDOWN        (0x80000000u + 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (0x80000000u + 8)
#define NBD_REP_ERR_TOO_BIG         (0x80000000u + 9)
#define NBD_EIO                     5u
#define NBD_EOVERFLOW               75u
#define NBD_ENOTSUP                 95u
#define NBD_ESHUTDOWN               108u

static inline void nbd_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void nbd_put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static inline void nbd_put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}
static inline uint16_t nbd_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}
static inline uint32_t nbd_get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t nbd_get64(const uint8_t *p)
{
    return (uint64_t)nbd_get32(p) << 32 | nbd_get32(p + 4);
}

#endif
