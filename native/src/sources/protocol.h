/* The chunk server's wire protocol (mirrored in harness/server/protocol.ts;
 * described in docs/protocol.md). All integers little-endian. */
#ifndef FAULTLAB_PROTOCOL_H
#define FAULTLAB_PROTOCOL_H

#include <stdint.h>

#define FL_PROTO_MAGIC   0x42414c46u /* "FLAB" */
#define FL_PROTO_VERSION 1u
#define FL_PROTO_MAX_LEN (16u << 20) /* largest READ/WRITE payload */

enum fl_op { FL_OP_HELLO = 1, FL_OP_READ = 2, FL_OP_WRITE = 3, FL_OP_PING = 4 };

enum fl_status {
    FL_ST_OK = 0,
    FL_ST_BOUNDS = 1, /* range outside the region, or offset+len overflows */
    FL_ST_BAD_OP = 2, /* unknown op: connection stays usable */
    FL_ST_TOO_LARGE = 3, /* len > FL_PROTO_MAX_LEN: server closes after answering */
    FL_ST_MALFORMED = 4, /* reserved bits set / len on HELLO or PING */
};

/* 16-byte request header; WRITE is followed by len payload bytes. */
struct fl_req {
    uint8_t op;
    uint8_t reserved[3];
    uint32_t len;
    uint64_t offset;
} __attribute__((packed));

/* 16-byte response header followed by len bytes (READ data, HELLO body). */
struct fl_resp {
    uint8_t status;
    uint8_t reserved[3];
    uint32_t len;
    uint64_t value; /* READ/WRITE: echo of offset; HELLO: region bytes */
} __attribute__((packed));

/* HELLO body (len = 24): magic, version, region bytes, seed. */
struct fl_hello {
    uint32_t magic;
    uint32_t version;
    uint64_t region_bytes;
    uint64_t seed;
} __attribute__((packed));

#endif
