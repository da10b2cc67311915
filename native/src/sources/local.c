/* The `local` source: the "remote" contents sit in an in-process buffer and a
 * fetch is a memcpy (the thesis's "0 ms: backend called directly"). */
#include "core/internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

struct local_source {
    struct fl_source base;
    uint8_t *data;
};

struct fl_conn {
    struct local_source *src;
};

static int local_connect(struct fl_source *s, struct fl_conn **out, char *err, size_t errlen)
{
    struct fl_conn *c = malloc(sizeof *c);
    if (!c) {
        fl_errf(err, errlen, "out of memory");
        return -1;
    }
    c->src = (struct local_source *)s;
    *out = c;
    return 0;
}

static int local_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    memcpy(dst, c->src->data + off, len);
    return 0;
}

static int local_write(struct fl_conn *c, uint64_t off, const void *src, size_t len, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    memcpy(c->src->data + off, src, len);
    return 0;
}

static uint64_t local_ping(struct fl_conn *c, int n, uint64_t *sent_at)
{
    (void)c;
    (void)n;
    if (sent_at)
        *sent_at = fl_now();
    return 0;
}

/* Pipelining has nothing to overlap in-process: the copy happens on receive. */
static int local_send_read(struct fl_conn *c, uint64_t off, void *dst, size_t len, char *err, size_t errlen)
{
    (void)c;
    (void)off;
    (void)dst;
    (void)len;
    (void)err;
    (void)errlen;
    return 0;
}

static int local_poll_fd(struct fl_conn *c)
{
    (void)c;
    return -1;
}

static void local_disconnect(struct fl_conn *c)
{
    free(c);
}

static void local_destroy(struct fl_source *s)
{
    struct local_source *l = (struct local_source *)s;
    munmap(l->data, s->region_bytes);
    free(l);
}

static const struct fl_source_ops local_ops = {
    .name = "local",
    .connect = local_connect,
    .read = local_read,
    .write = local_write,
    .ping_ns = local_ping,
    .disconnect = local_disconnect,
    .destroy = local_destroy,
    .send_read = local_send_read,
    .recv_read = local_read,
    .poll_fd = local_poll_fd,
};

struct fl_source *fl_source_local_create(const struct fl_config *cfg, char *err, size_t errlen)
{
    struct local_source *l = calloc(1, sizeof *l);
    if (!l) {
        fl_errf(err, errlen, "out of memory");
        return NULL;
    }
    l->data = mmap(NULL, cfg->region_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (l->data == MAP_FAILED) {
        fl_errf(err, errlen, "cannot allocate the local source (%llu bytes): out of memory", (unsigned long long)cfg->region_bytes);
        free(l);
        return NULL;
    }
    fl_fill(l->data, cfg->region_bytes, cfg->seed, 0);
    if (cfg->corrupt_offset >= 0)
        l->data[cfg->corrupt_offset] ^= 0xff; /* a test's deliberately wrong chunk */
    l->base.ops = &local_ops;
    l->base.region_bytes = cfg->region_bytes;
    l->base.seed = cfg->seed;
    l->base.fetch_timeout_ms = cfg->fetch_timeout_ms;
    return &l->base;
}
