/* Sparse contents for the NBD server (nbd_store.h): an open-addressing hash
 * map from page index to a 4 KiB page, grown at half full. */
#include "server/nbd_store.h"
#include "server/nbd_proto.h"
#include "faultlab.h"

#include <stdlib.h>
#include <string.h>

void nbd_store_init(struct nbd_store *st, uint64_t size, uint64_t seed, uint64_t max_bytes)
{
    *st = (struct nbd_store){.size = size, .seed = seed, .max_pages = max_bytes / NBD_STORE_PAGE};
}

static size_t slot_of(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static uint8_t *find(const struct nbd_store *st, uint64_t page)
{
    if (!st->n)
        return NULL;
    for (size_t i = slot_of(page + 1, st->cap);; i = (i + 1) & (st->cap - 1)) {
        if (st->keys[i] == page + 1)
            return st->pages[i];
        if (!st->keys[i])
            return NULL;
    }
}

static void put(uint64_t *keys, uint8_t **pages, size_t cap, uint64_t key, uint8_t *page)
{
    size_t i = slot_of(key, cap);
    while (keys[i])
        i = (i + 1) & (cap - 1);
    keys[i] = key;
    pages[i] = page;
}

static int grow(struct nbd_store *st)
{
    size_t cap = st->cap ? st->cap * 2 : 1024;
    uint64_t *keys = calloc(cap, sizeof *keys);
    uint8_t **pages = calloc(cap, sizeof *pages);
    if (!keys || !pages) {
        free(keys);
        free(pages);
        return -1;
    }
    for (size_t i = 0; i < st->cap; i++)
        if (st->keys[i])
            put(keys, pages, cap, st->keys[i], st->pages[i]);
    free(st->keys);
    free(st->pages);
    st->keys = keys;
    st->pages = pages;
    st->cap = cap;
    return 0;
}

/* fl_fill wants whole 8-byte words at an aligned address: anything else
 * (an NBD client may read any byte range) goes through an aligned copy. */
static void fill_bytes(uint8_t *dst, uint64_t len, uint64_t seed, uint64_t off)
{
    if (off % 8 == 0 && len % 8 == 0 && (uintptr_t)dst % 8 == 0) {
        fl_fill(dst, len, seed, off);
        return;
    }
    uint64_t tmp[NBD_STORE_PAGE / 8 + 1];
    while (len) {
        uint64_t start = off & ~7ull, n = len < NBD_STORE_PAGE ? len : NBD_STORE_PAGE;
        uint64_t words = (off + n - start + 7) / 8;
        fl_fill(tmp, words * 8, seed, start);
        memcpy(dst, (uint8_t *)tmp + (off - start), n);
        dst += n, off += n, len -= n;
    }
}

void nbd_store_read(const struct nbd_store *st, uint64_t off, uint64_t len, uint8_t *dst)
{
    if (st->mem) {
        memcpy(dst, st->mem + off, len);
        return;
    }
    if (!st->n) {
        fill_bytes(dst, len, st->seed, off);
        return;
    }
    while (len) {
        uint64_t page = off / NBD_STORE_PAGE, in = off % NBD_STORE_PAGE;
        uint64_t n = NBD_STORE_PAGE - in < len ? NBD_STORE_PAGE - in : len;
        const uint8_t *p = find(st, page);
        if (p)
            memcpy(dst, p + in, n);
        else
            fill_bytes(dst, n, st->seed, off);
        dst += n, off += n, len -= n;
    }
}

uint32_t nbd_store_write(struct nbd_store *st, uint64_t off, const uint8_t *src, uint64_t len)
{
    if (st->mem)
        return NBD_EPERM; /* a source's memory is served, never written */
    while (len) {
        uint64_t page = off / NBD_STORE_PAGE, in = off % NBD_STORE_PAGE;
        uint64_t n = NBD_STORE_PAGE - in < len ? NBD_STORE_PAGE - in : len;
        uint8_t *p = find(st, page);
        if (!p) {
            if (st->n >= st->max_pages)
                return NBD_ENOSPC;
            if ((st->n + 1) * 2 > st->cap && grow(st))
                return NBD_ENOMEM;
            if (!(p = malloc(NBD_STORE_PAGE)))
                return NBD_ENOMEM;
            fl_fill(p, NBD_STORE_PAGE, st->seed, page * NBD_STORE_PAGE); /* the bytes this write leaves alone */
            put(st->keys, st->pages, st->cap, page + 1, p);
            st->n++;
        }
        memcpy(p + in, src, n);
        src += n, off += n, len -= n;
    }
    return 0;
}

void nbd_store_free(struct nbd_store *st)
{
    for (size_t i = 0; i < st->cap; i++)
        if (st->keys[i])
            free(st->pages[i]);
    free(st->keys);
    free(st->pages);
    *st = (struct nbd_store){0};
}
