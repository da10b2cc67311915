/* The NBD protocol on one connection (nbd_server.h), strict as nbdkit is:
 * fixed newstyle only, unknown client flags or a bad magic close the
 * connection, options the server does not speak get NBD_REP_ERR_UNSUP, and
 * requests outside the export or its block sizes get an error reply while the
 * connection stays usable. Every message is run only once the room for its
 * reply is reserved (nbd_out.c); without room it stays in the input buffer and
 * the connection is not read until the sender frees some. */
#include "server/nbd_server.h"
#include "server/nbd_proto.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RUN_OK = 0, RUN_FINISH = 1, RUN_CLOSE = -1, RUN_PAUSED = 2 };

/* ---- replies ---- */

/* Reserve, build, queue: RUN_PAUSED without room, RUN_CLOSE without memory. */
static int send_bytes(struct fl_nbd_server *s, struct nbd_conn *c, const uint8_t *b, size_t n, bool reply)
{
    if (!nbd_out_reserve(s, c, n))
        return RUN_PAUSED;
    /* A reply leaves at its request's receive time + RTT; the greeting at once. */
    struct nbd_item *it = nbd_item_new(n, reply ? c->rx_ns + s->o.rtt_ns : 0, reply);
    if (!it) {
        nbd_log(s, c->peer, "closed: out of memory for a reply");
        return RUN_CLOSE;
    }
    memcpy(it->data, b, n);
    nbd_out_queue(s, c, it);
    return RUN_OK;
}

/* Option replies to one option go out together, in one item. */
struct opt_replies {
    uint8_t b[1024];
    size_t n;
};

static void opt_reply(struct opt_replies *r, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t *p = r->b + r->n;
    nbd_put64(p, NBD_REP_MAGIC);
    nbd_put32(p + 8, opt);
    nbd_put32(p + 12, type);
    nbd_put32(p + 16, len);
    if (len)
        memcpy(p + NBD_OPT_REPLY_BYTES, data, len);
    r->n += NBD_OPT_REPLY_BYTES + len;
}

static int opt_error(struct fl_nbd_server *s, struct nbd_conn *c, uint32_t opt, uint32_t type, const char *msg)
{
    struct opt_replies r = {.n = 0};
    opt_reply(&r, opt, type, msg, (uint32_t)strlen(msg)); /* error replies may carry a message for the user */
    return send_bytes(s, c, r.b, r.n, true);
}

static void simple_reply(uint8_t *p, uint32_t err, const uint8_t cookie[8])
{
    nbd_put32(p, NBD_SIMPLE_REPLY_MAGIC);
    nbd_put32(p + 4, err);
    memcpy(p + 8, cookie, 8);
}

/* ---- handshake ---- */

int nbd_session_greet(struct fl_nbd_server *s, struct nbd_conn *c)
{
    uint8_t g[NBD_GREETING_BYTES];
    nbd_put64(g, NBD_MAGIC);
    nbd_put64(g + 8, NBD_IHAVEOPT);
    nbd_put16(g + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    int rc = send_bytes(s, c, g, sizeof g, false);
    if (rc == RUN_PAUSED) {
        nbd_log(s, c->peer, "closed: no room for the greeting (total_cap reached)");
        return RUN_CLOSE;
    }
    return rc;
}

static bool is_our_export(struct fl_nbd_server *s, const uint8_t *name, uint32_t len)
{
    /* The empty name is the default export (nbd://host:port). */
    return len == 0 || (len == strlen(s->o.export_name) && !memcmp(name, s->o.export_name, len));
}

/* A client's name, printable and short, for a log line. */
static const char *shown(const uint8_t *name, uint32_t len, char *out, size_t cap)
{
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = isprint(name[i]) ? (char)name[i] : '?';
    out[n] = 0;
    return out;
}

static uint16_t transmission_flags(void)
{
    return NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH;
}

static int opt_export_name(struct fl_nbd_server *s, struct nbd_conn *c, const uint8_t *d, uint32_t len)
{
    if (!is_our_export(s, d, len)) {
        char name[65];
        /* This option has no error reply: the protocol says to end the session. */
        nbd_log(s, c->peer, "closed: NBD_OPT_EXPORT_NAME of an unknown export '%s'", shown(d, len, name, sizeof name));
        return RUN_CLOSE;
    }
    uint8_t b[8 + 2 + 124] = {0};
    nbd_put64(b, s->o.region);
    nbd_put16(b + 8, transmission_flags());
    int rc = send_bytes(s, c, b, c->no_zeroes ? 10 : sizeof b, true);
    if (rc == RUN_OK)
        c->state = NBD_ST_TRANS;
    return rc;
}

static int opt_info_go(struct fl_nbd_server *s, struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    /* Data: name length (32), name, number of info requests (16), each request (16). */
    uint32_t name_len = len >= 6 ? nbd_get32(d) : 0;
    if (len < 6 || name_len > len - 6 || len != 4 + name_len + 2 + 2u * nbd_get16(d + 4 + name_len))
        return opt_error(s, c, opt, NBD_REP_ERR_INVALID, "malformed NBD_OPT_INFO/NBD_OPT_GO data");
    if (!is_our_export(s, d + 4, name_len))
        return opt_error(s, c, opt, NBD_REP_ERR_UNKNOWN, "no such export");
    struct opt_replies r = {.n = 0};
    uint8_t export[12], sizes[14];
    nbd_put16(export, NBD_INFO_EXPORT);
    nbd_put64(export + 2, s->o.region);
    nbd_put16(export + 10, transmission_flags());
    opt_reply(&r, opt, NBD_REP_INFO, export, sizeof export);
    /* Sent whether asked for or not (the protocol allows it): the minimum is 1, so no client is held to more. */
    nbd_put16(sizes, NBD_INFO_BLOCK_SIZE);
    nbd_put32(sizes + 2, NBD_MIN_BLOCK);
    nbd_put32(sizes + 6, NBD_PREF_BLOCK);
    nbd_put32(sizes + 10, NBD_MAX_BLOCK);
    opt_reply(&r, opt, NBD_REP_INFO, sizes, sizeof sizes);
    /* The description only when asked for: "faultlab seed=N" tells a faultlab
     * client which contents to expect (sources/tcp.c checks it against its seed). */
    uint16_t nreq = nbd_get16(d + 4 + name_len);
    for (uint16_t i = 0; i < nreq; i++) {
        if (nbd_get16(d + 6 + name_len + 2u * i) != NBD_INFO_DESCRIPTION)
            continue;
        uint8_t desc[2 + 64];
        nbd_put16(desc, NBD_INFO_DESCRIPTION);
        int n = snprintf((char *)desc + 2, sizeof desc - 2, "faultlab seed=%llu", (unsigned long long)s->o.seed);
        opt_reply(&r, opt, NBD_REP_INFO, desc, (uint32_t)(2 + n));
        break;
    }
    opt_reply(&r, opt, NBD_REP_ACK, NULL, 0);
    int rc = send_bytes(s, c, r.b, r.n, true);
    if (rc == RUN_OK && opt == NBD_OPT_GO)
        c->state = NBD_ST_TRANS;
    return rc;
}

static int option(struct fl_nbd_server *s, struct nbd_conn *c, uint32_t opt, const uint8_t *d, uint32_t len)
{
    struct opt_replies r = {.n = 0};
    switch (opt) {
    case NBD_OPT_EXPORT_NAME:
        return opt_export_name(s, c, d, len);
    case NBD_OPT_ABORT: {
        opt_reply(&r, opt, NBD_REP_ACK, NULL, 0);
        int rc = send_bytes(s, c, r.b, r.n, true);
        return rc == RUN_OK ? RUN_FINISH : rc;
    }
    case NBD_OPT_LIST: {
        if (len)
            return opt_error(s, c, opt, NBD_REP_ERR_INVALID, "NBD_OPT_LIST takes no data");
        uint8_t server[4 + sizeof s->o.export_name];
        uint32_t n = (uint32_t)strlen(s->o.export_name);
        nbd_put32(server, n);
        memcpy(server + 4, s->o.export_name, n);
        opt_reply(&r, opt, NBD_REP_SERVER, server, 4 + n);
        opt_reply(&r, opt, NBD_REP_ACK, NULL, 0);
        return send_bytes(s, c, r.b, r.n, true);
    }
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        return opt_info_go(s, c, opt, d, len);
    default: /* STARTTLS, STRUCTURED_REPLY, meta contexts, extended headers, ...: simple replies only */
        return opt_error(s, c, opt, NBD_REP_ERR_UNSUP, "option not supported by the faultlab server");
    }
}

/* ---- transmission ---- */

static int request(struct fl_nbd_server *s, struct nbd_conn *c, const uint8_t *p)
{
    uint32_t magic = nbd_get32(p), len = nbd_get32(p + 24);
    uint16_t flags = nbd_get16(p + 4), type = nbd_get16(p + 6);
    uint64_t off = nbd_get64(p + 16);
    const uint8_t *cookie = p + 8;
    if (magic != NBD_REQUEST_MAGIC) {
        nbd_log(s, c->peer, "closed: bad request magic 0x%08x", magic);
        return RUN_CLOSE;
    }
    if (type > NBD_CMD_BLOCK_STATUS) { /* no way to know whether a payload follows */
        nbd_log(s, c->peer, "closed: unknown command %u", type);
        return RUN_CLOSE;
    }
    if (type == NBD_CMD_WRITE && len > NBD_MAX_BLOCK) { /* too large to take in and throw away */
        nbd_log(s, c->peer, "closed: WRITE of %u bytes, more than the maximum block (%u bytes)", len, NBD_MAX_BLOCK);
        return RUN_CLOSE;
    }
    if (type == NBD_CMD_DISC) {
        atomic_fetch_add(&s->st.requests, 1);
        return RUN_FINISH;
    }
    bool in_range = len > 0 && off <= s->o.region && len <= s->o.region - off;
    uint32_t err = 0;
    uint64_t need = NBD_REPLY_BYTES;
    switch (type) {
    case NBD_CMD_READ: /* no command flag is valid: none was advertised */
        err = flags || len > NBD_MAX_BLOCK || !in_range ? NBD_EINVAL : 0;
        need += err ? 0 : len;
        break;
    case NBD_CMD_WRITE: /* past the end: ENOSPC, as the protocol asks of a write */
        err = flags || len == 0 ? NBD_EINVAL : !in_range ? NBD_ENOSPC : 0;
        break;
    case NBD_CMD_FLUSH: /* nothing is volatile: written pages are the store */
        err = flags || off || len ? NBD_EINVAL : 0;
        break;
    default: /* TRIM, CACHE, WRITE_ZEROES, BLOCK_STATUS: not advertised */
        err = NBD_EINVAL;
    }
    if (!nbd_out_reserve(s, c, need))
        return RUN_PAUSED;
    atomic_fetch_add(&s->st.requests, 1);
    if (type == NBD_CMD_WRITE && len > 0) { /* its reply waits for the payload, even one to throw away */
        memcpy(c->pay.cookie, cookie, 8);
        c->pay.off = off;
        c->pay.left = c->pay.len = len;
        c->pay.err = err;
        c->pay.started = fl_now();
        c->state = NBD_ST_PAYLOAD;
        return RUN_OK;
    }
    struct nbd_item *it = nbd_item_new(need, c->rx_ns + s->o.rtt_ns, true);
    if (!it && need > NBD_REPLY_BYTES) { /* a large READ: say so instead */
        nbd_out_unreserve(s, c, need - NBD_REPLY_BYTES);
        err = NBD_ENOMEM;
        need = NBD_REPLY_BYTES;
        it = nbd_item_new(need, c->rx_ns + s->o.rtt_ns, true);
    }
    if (!it) {
        nbd_log(s, c->peer, "closed: out of memory for a reply");
        return RUN_CLOSE;
    }
    simple_reply(it->data, err, cookie);
    if (err) {
        atomic_fetch_add(&s->st.errors, 1);
    } else if (type == NBD_CMD_READ) {
        nbd_store_read(&s->store, off, len, it->data + NBD_REPLY_BYTES);
        atomic_fetch_add(&s->st.reads, 1);
        atomic_fetch_add(&s->st.bytes_read, len);
    } else if (type == NBD_CMD_FLUSH) {
        atomic_fetch_add(&s->st.flushes, 1);
    }
    nbd_out_queue(s, c, it);
    return RUN_OK;
}

/* Payload bytes of the WRITE being received; its reply once it is complete. */
static int payload(struct fl_nbd_server *s, struct nbd_conn *c, const uint8_t *p, size_t n)
{
    if (!c->pay.err) {
        uint32_t e = nbd_store_write(&s->store, c->pay.off, p, n);
        if (e)
            c->pay.err = e;
    }
    c->pay.off += n;
    c->pay.left -= n;
    if (c->pay.left)
        return RUN_OK;
    c->state = NBD_ST_TRANS;
    struct nbd_item *it = nbd_item_new(NBD_REPLY_BYTES, c->rx_ns + s->o.rtt_ns, true); /* reserved with its header */
    if (!it) {
        nbd_log(s, c->peer, "closed: out of memory for a reply");
        return RUN_CLOSE;
    }
    simple_reply(it->data, c->pay.err, c->pay.cookie);
    if (c->pay.err) {
        atomic_fetch_add(&s->st.errors, 1);
    } else {
        atomic_fetch_add(&s->st.writes, 1);
        atomic_fetch_add(&s->st.bytes_written, c->pay.len);
    }
    nbd_out_queue(s, c, it);
    return RUN_OK;
}

int nbd_session_process(struct fl_nbd_server *s, struct nbd_conn *c)
{
    for (;;) {
        const uint8_t *p = c->in + c->in_used;
        size_t avail = c->in_have - c->in_used, used = 0;
        int rc = RUN_OK;
        switch (c->state) {
        case NBD_ST_FLAGS: {
            if (avail < 4)
                return RUN_OK;
            uint32_t flags = nbd_get32(p);
            if (flags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
                nbd_log(s, c->peer, "closed: unknown client flags 0x%x", flags);
                return RUN_CLOSE;
            }
            if (!(flags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
                nbd_log(s, c->peer, "closed: the client does not speak fixed newstyle (client flags 0x%x)", flags);
                return RUN_CLOSE;
            }
            c->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
            c->state = NBD_ST_OPTS;
            used = 4;
            break;
        }
        case NBD_ST_OPTS: {
            if (avail < NBD_OPT_HEADER_BYTES)
                return RUN_OK;
            uint64_t magic = nbd_get64(p);
            uint32_t opt = nbd_get32(p + 8), len = nbd_get32(p + 12);
            if (magic != NBD_IHAVEOPT) {
                nbd_log(s, c->peer, "closed: bad option magic 0x%016llx", (unsigned long long)magic);
                return RUN_CLOSE;
            }
            if (len > NBD_MAX_OPTION) {
                nbd_log(s, c->peer, "closed: option %u with %u bytes of data (at most %u)", opt, len, NBD_MAX_OPTION);
                return RUN_CLOSE;
            }
            if (c->options >= NBD_MAX_OPTIONS) {
                nbd_log(s, c->peer, "closed: more than %u options in one handshake", NBD_MAX_OPTIONS);
                return RUN_CLOSE;
            }
            if (avail < NBD_OPT_HEADER_BYTES + len)
                return RUN_OK;
            rc = option(s, c, opt, p + NBD_OPT_HEADER_BYTES, len);
            if (rc != RUN_PAUSED) {
                c->options++;
                used = NBD_OPT_HEADER_BYTES + len;
            }
            break;
        }
        case NBD_ST_TRANS:
            if (avail < NBD_REQUEST_BYTES)
                return RUN_OK;
            rc = request(s, c, p);
            used = rc == RUN_PAUSED ? 0 : NBD_REQUEST_BYTES;
            break;
        case NBD_ST_PAYLOAD:
            if (!avail)
                return RUN_OK;
            used = avail < c->pay.left ? avail : c->pay.left;
            rc = payload(s, c, p, used);
            break;
        case NBD_ST_DONE: /* after NBD_CMD_DISC or NBD_OPT_ABORT nothing more is read */
            c->in_used = c->in_have;
            return RUN_OK;
        }
        c->in_used += used;
        if (rc == RUN_PAUSED)
            return RUN_OK;
        if (rc != RUN_OK)
            return rc;
    }
}
